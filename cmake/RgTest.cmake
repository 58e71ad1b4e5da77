# Test registration helpers. Every test is an ordinary CTest test with a label:
#   unit  single process, CPU
#   mpi   runs under real `mpirun -np N` (root and oversubscribe flags added)
#   gpu   needs CUDA; skips itself (GTEST_SKIP) when no device is present
find_package(GTest REQUIRED)

# rg_add_gtest(NAME SOURCES a.cpp b.cpp LIBS rg_model [TORCH] [LABELS unit] [TIMEOUT s] [MAIN] [NO_TEST])
# TORCH reuses the shared <torch/torch.h> precompiled header. Without MAIN, gtest_main is linked;
# with MAIN the sources bring their own main() (MPI tests initialise MPI first). NO_TEST builds the
# executable only (register it with rg_add_gtest_entry or rg_add_mpi_test).
# Tests compile at -Og: the code under test is the -O2 libraries, and -Og compiles a test file in about
# half the time of -O2 (GCC 12, measured on the 2-core AMD EPYC).
function(rg_add_gtest name)
  cmake_parse_arguments(T "TORCH;MAIN;NO_TEST" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_compile_options(${name} PRIVATE -Og)
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest)
  if(NOT T_MAIN)
    target_link_libraries(${name} PRIVATE GTest::gtest_main)
  endif()
  if(T_TORCH)
    rg_use_torch(${name})
  endif()
  if(T_NO_TEST)  # an executable run only through rg_add_gtest_entry or rg_add_mpi_test
    return()
  endif()
  set(entry_args)
  if(T_LABELS)
    list(APPEND entry_args LABELS ${T_LABELS})
  endif()
  if(T_TIMEOUT)
    list(APPEND entry_args TIMEOUT ${T_TIMEOUT})
  endif()
  rg_add_gtest_entry(${name} ${name} ${entry_args})
endfunction()

# rg_add_gtest_entry(NAME EXECUTABLE [FILTER gtest-filter] [LABELS ...] [TIMEOUT s])
# One CTest entry running (a part of) a test executable. Entries labelled gpu report "skipped" in ctest,
# not "passed", when every test in them skipped itself (no CUDA device).
function(rg_add_gtest_entry name exe)
  cmake_parse_arguments(T "" "FILTER;TIMEOUT" "LABELS" ${ARGN})
  set(args)
  if(T_FILTER)
    set(args --gtest_filter=${T_FILTER})
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${name} COMMAND ${exe} ${args})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
  if("gpu" IN_LIST T_LABELS)
    # gtest's summary when every test skipped itself and none failed: "[  PASSED  ] 0 tests." followed by
    # nothing but "[  SKIPPED ]" lines up to the end (a failure would add "[  FAILED  ]" lines after them).
    set_tests_properties(${name} PROPERTIES SKIP_REGULAR_EXPRESSION
                         "\\[  PASSED  \\] 0 tests\\.[\r\n]+(\\[  SKIPPED \\][^\r\n]*[\r\n]+)+$")
  endif()
endfunction()

# The mpirun prefix used by tests and by launch/local.sh: root needs explicit permission, and a 2-core
# machine needs oversubscription to run 4 ranks.
set(RG_MPIEXEC ${MPIEXEC_EXECUTABLE} --oversubscribe --allow-run-as-root --bind-to none
    CACHE INTERNAL "")

# rg_add_mpi_test(NAME NP n COMMAND exe args... [LABELS ...] [TIMEOUT s])
# Registers `mpirun -np n exe args...` as a CTest test labelled mpi.
function(rg_add_mpi_test name)
  cmake_parse_arguments(T "" "NP;TIMEOUT" "COMMAND;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${name} COMMAND ${RG_MPIEXEC} -np ${T_NP} ${T_COMMAND})
  set_tests_properties(${name} PROPERTIES LABELS "mpi;${T_LABELS}" TIMEOUT ${T_TIMEOUT}
                       PROCESSORS ${T_NP})
endfunction()
