# Test registration helpers. Every test is an ordinary CTest test with a label:
#   unit  single process, CPU
#   mpi   runs under real `mpirun -np N` (root and oversubscribe flags added)
#   gpu   needs CUDA; skips itself (GTEST_SKIP) when no device is present
find_package(GTest REQUIRED)

# rg_add_gtest(NAME SOURCES a.cpp b.cpp LIBS rg_model [TORCH] [LABELS unit] [TIMEOUT s] [MAIN])
# TORCH reuses the shared <torch/torch.h> precompiled header. Without MAIN, gtest_main is linked;
# with MAIN the sources bring their own main() (MPI tests initialise MPI first).
function(rg_add_gtest name)
  cmake_parse_arguments(T "TORCH;MAIN;NO_TEST" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest)
  if(NOT T_MAIN)
    target_link_libraries(${name} PRIVATE GTest::gtest_main)
  endif()
  if(T_TORCH)
    rg_use_torch(${name})
  endif()
  if(T_NO_TEST)  # an executable run only through rg_add_mpi_test
    return()
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
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
