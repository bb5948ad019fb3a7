# CLI tests (pytest): the kiln tool and the mnist_api example, run as built.
if(TARGET kiln AND TARGET mnist_api)
  add_test(NAME cli COMMAND python3 -m pytest -q -p no:cacheprovider ${CMAKE_SOURCE_DIR}/tests/cli)
  set_tests_properties(cli PROPERTIES
    ENVIRONMENT "KILN_BIN=$<TARGET_FILE:kiln>;KILN_MNIST=$<TARGET_FILE:mnist_api>"
    TIMEOUT 900)
endif()
