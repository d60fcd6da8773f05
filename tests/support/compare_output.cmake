# cmake -D EXE=<program> [-D "ARGS=<a b ...>"] -D EXPECTED=<file> [-D WRITES=<file>]
#       -P compare_output.cmake
# Runs the program (with ARGS, split as a shell would) and fails unless it
# exits with 0 and its standard output is byte for byte the content of the file.
# With WRITES, the program must also write that file (removed before the run),
# as a JSON array of at least one element.
separate_arguments(args UNIX_COMMAND "${ARGS}")
if(WRITES)
  file(REMOVE ${WRITES})
endif()
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
if(WRITES)
  if(NOT EXISTS ${WRITES})
    message(FATAL_ERROR "${EXE} did not write ${WRITES}")
  endif()
  file(READ ${WRITES} written)
  string(JSON type ERROR_VARIABLE error TYPE "${written}")
  if(error OR NOT type STREQUAL "ARRAY")
    message(FATAL_ERROR "${WRITES} is not a JSON array: ${error}")
  endif()
  string(JSON length LENGTH "${written}")
  if(length EQUAL 0)
    message(FATAL_ERROR "${WRITES} holds no events")
  endif()
endif()
