# Fails when a C++ file that git tracks is not formatted as .clang-format says.
#   cmake -D SOURCE=<repository> -D CLANG_FORMAT=<clang-format-16> -P check_format.cmake
# The fix is printed: run clang-format -i on the files listed.
execute_process(
  COMMAND git -C ${SOURCE} ls-files -- *.hpp *.cpp
  OUTPUT_VARIABLE files_text
  RESULT_VARIABLE git_result
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT git_result EQUAL 0)
  message(FATAL_ERROR "check_format: ${SOURCE} is not a git checkout; nothing to check")
endif()
string(REPLACE "\n" ";" files "${files_text}")
set(unformatted)
foreach(file IN LISTS files)
  execute_process(
    COMMAND ${CLANG_FORMAT} --dry-run --Werror ${file}
    WORKING_DIRECTORY ${SOURCE}
    RESULT_VARIABLE result
    OUTPUT_QUIET ERROR_QUIET)
  if(NOT result EQUAL 0)
    list(APPEND unformatted ${file})
  endif()
endforeach()
if(unformatted)
  list(JOIN unformatted " " listed)
  message(FATAL_ERROR "check_format: not formatted (fix with: ${CLANG_FORMAT} -i ${listed})")
endif()
list(LENGTH files count)
message(STATUS "check_format: ${count} files formatted")
