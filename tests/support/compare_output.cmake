# cmake -D EXE=<program> [-D "ARGS=<a b ...>"] -D EXPECTED=<file> -P compare_output.cmake
# Runs the program (with ARGS, split as a shell would) and fails unless it
# exits with 0 and its standard output is byte for byte the content of the file.
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${EXE} ${args} OUTPUT_VARIABLE actual RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${EXE} exited with ${status}; its output was:\n${actual}")
endif()
file(READ ${EXPECTED} expected)
if(NOT actual STREQUAL expected)
  file(WRITE ${EXE}.actual.txt "${actual}")
  message(FATAL_ERROR
    "The output of ${EXE} differs from ${EXPECTED}.\n"
    "It is kept in ${EXE}.actual.txt; compare with: diff ${EXPECTED} ${EXE}.actual.txt")
endif()
