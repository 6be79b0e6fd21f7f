# cmake/cuda_kernels.cmake: the CUDA kernels of engine/src/cuda (every entry
# of the backend table but memory and devices, which cuda/backend.cu owns)
# as a static library, nn_cuda_kernels, wherever nvcc is found; and the
# tests that need no GPU: cuda.kernels_compile (the library builds, warnings
# as errors) and cuda.fill_kernels (nn_cuda_fill_kernels fills every kernel
# entry of a table without touching the CUDA runtime).
#
# Included from CMakeLists.txt's test section; the backend's own library
# (libnn_cuda.so) takes these sources from NN_CUDA_KERNEL_SOURCES.
set(NN_CUDA_KERNEL_SOURCES
    activation.cu copy_kernels.cu elementwise.cu gemm.cu kernels.cu loss.cu optim.cu random.cu
    reduce.cu toolkit.cu)
list(TRANSFORM NN_CUDA_KERNEL_SOURCES PREPEND ${PROJECT_SOURCE_DIR}/engine/src/cuda/)

# Not in the sanitizer build: device code is not instrumented, and the
# kernels would only double ./test.sh's nvcc time.
find_program(NN_CUDA_KERNELS_NVCC nvcc PATHS /usr/local/cuda/bin)
if(NN_CUDA AND NN_CUDA_KERNELS_NVCC AND NOT NN_SANITIZE)
  if(NOT CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_COMPILER ${NN_CUDA_KERNELS_NVCC})
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)

  add_library(nn_cuda_kernels STATIC ${NN_CUDA_KERNEL_SOURCES})
  # sm_90 code plus its PTX, which newer cards compile at load time.
  set_target_properties(nn_cuda_kernels PROPERTIES
    CUDA_ARCHITECTURES 90 CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
    POSITION_INDEPENDENT_CODE ON INTERPROCEDURAL_OPTIMIZATION OFF)
  target_include_directories(nn_cuda_kernels
    PUBLIC ${PROJECT_SOURCE_DIR}/engine/include
    PRIVATE ${PROJECT_SOURCE_DIR}/engine/src)
  # --fmad=false: the CPU build never contracts a * b + c into one rounding
  # (C11, -ffp-contract=off), and the same formula must round the same way
  # on both devices; math/ writes fma() where PyTorch's kernels fuse.
  target_compile_options(nn_cuda_kernels PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -Xcompiler=-Wall,-Wextra --Werror all-warnings>)
  target_link_libraries(nn_cuda_kernels PUBLIC CUDA::cudart_static CUDA::cublas)

  add_test(NAME cuda.kernels_compile
           COMMAND ${CMAKE_COMMAND} --build ${PROJECT_BINARY_DIR} --target nn_cuda_kernels)

  # A C test against the kernels and the engine (the kernels' host code is
  # C++: its runtime comes with the C link).
  function(nn_cuda_kernels_test name source)
    add_executable(${name} ${source})
    set_target_properties(${name} PROPERTIES
      RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests LINKER_LANGUAGE C)
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/engine/src
                               ${PROJECT_SOURCE_DIR}/tests/c)
    target_compile_options(${name} PRIVATE -UNDEBUG)
    target_link_libraries(${name} PRIVATE nn_cuda_kernels nn_engine stdc++)
  endfunction()

  nn_cuda_kernels_test(cuda_fill_kernels ${PROJECT_SOURCE_DIR}/tests/cuda/fill_kernels.c)
  add_test(NAME cuda.fill_kernels COMMAND cuda_fill_kernels WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})

  # Every kernel against the CPU's, on a GPU (tests/gpu/kernels.c); where
  # there is none it exits 77 and ctest counts it skipped.
  nn_cuda_kernels_test(cuda_kernels_check ${PROJECT_SOURCE_DIR}/tests/gpu/kernels.c)
  add_test(NAME cuda.kernels_check COMMAND cuda_kernels_check WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(cuda.kernels_check PROPERTIES SKIP_RETURN_CODE 77)
  message(STATUS "CUDA kernels: ${CMAKE_CUDA_COMPILER} (nn_cuda_kernels, tests cuda.*)")
else()
  message(STATUS "CUDA kernels: not built (no nvcc, NN_CUDA=OFF, or NN_SANITIZE)")
endif()
