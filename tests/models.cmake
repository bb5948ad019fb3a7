# Real models end to end (pytest, tests/models): resnet18, mobilenet_v2 and a small BERT are
# exported from PyTorch into the build directory at test time, built and run by kiln, and compared
# with onnxruntime. One CTest test per model so that ctest -j runs them side by side. Needs a
# Python with torch (Debian's python3-torch; scripts/setup.sh installs it).
if(TARGET kiln)
  foreach(model resnet18 mobilenet_v2 bert_small)
    add_test(NAME model_${model} COMMAND python3 -m pytest -q -p no:cacheprovider ${CMAKE_SOURCE_DIR}/tests/models)
    set_tests_properties(model_${model} PROPERTIES
      ENVIRONMENT "KILN_BIN=$<TARGET_FILE:kiln>;KILN_MODELS_DIR=${CMAKE_BINARY_DIR}/models;KILN_MODELS=${model}"
      LABELS models
      TIMEOUT 1200)
  endforeach()
endif()
