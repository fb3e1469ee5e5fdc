# Warnings every target of the project is built with; ORGSYNC_WERROR turns
# them into errors (CI builds).
add_library(orgsync_warnings INTERFACE)
target_compile_options(orgsync_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
  -Wnull-dereference -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  # Designated initializers leave members at their default member
  # initializers on purpose.
  -Wno-missing-field-initializers)
if(ORGSYNC_WERROR)
  target_compile_options(orgsync_warnings INTERFACE -Werror)
endif()
