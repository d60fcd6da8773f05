# cmake -D MODE=install|subdirectory -D BRAID_SOURCE=<dir> -D BRAID_BUILD=<dir>
#       -D WORK=<dir> -D CXX=<compiler> -P consume.cmake
# Builds and runs tests/consumer against braid: installed from BRAID_BUILD
# into a fresh prefix and found with find_package, or added with
# add_subdirectory. Fails if any step fails.
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "${ARGV}\nfailed (${status}):\n${out}\n${err}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK})
set(args -S ${BRAID_SOURCE}/tests/consumer -B ${WORK}/build -DCMAKE_CXX_COMPILER=${CXX})
if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} --install ${BRAID_BUILD} --prefix ${WORK}/prefix)
  list(APPEND args -DCMAKE_PREFIX_PATH=${WORK}/prefix)
else()
  list(APPEND args -DBRAID_SOURCE_DIR=${BRAID_SOURCE})
endif()
run(${CMAKE_COMMAND} ${args})
run(${CMAKE_COMMAND} --build ${WORK}/build)
run(${WORK}/build/consumer)
