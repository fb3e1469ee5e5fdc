# ORGSYNC_FUZZ=ON: a separate build (make fuzz, build dir build-fuzz) of the
# libFuzzer targets under tests/fuzz with clang, ASan and UBSan. Every
# project library is instrumented for coverage (fuzzer-no-link); only the
# fuzz targets link libFuzzer's main. The normal GCC build never sets it.
#
# Debian 12's libstdc++ 12 declares <expected> only when __cpp_concepts is
# at least 202002L; clang 16 implements what <expected> needs but still
# reports 201907L, so the macro is raised by hand (hence -Wno-macro-redefined).
# clang 14 cannot compile <expected> at all.
if(ORGSYNC_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang" OR CMAKE_CXX_COMPILER_VERSION VERSION_LESS 16)
    message(FATAL_ERROR "ORGSYNC_FUZZ needs clang 16 or later "
                        "(-DCMAKE_CXX_COMPILER=clang++-16), not ${CMAKE_CXX_COMPILER_ID} "
                        "${CMAKE_CXX_COMPILER_VERSION}")
  endif()
  if(ORGSYNC_SANITIZE)
    message(FATAL_ERROR "ORGSYNC_FUZZ sets its own sanitizers; leave ORGSYNC_SANITIZE empty")
  endif()
  add_compile_options(-Wno-macro-redefined -D__cpp_concepts=202002L
                      -fsanitize=fuzzer-no-link,address,undefined
                      -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
