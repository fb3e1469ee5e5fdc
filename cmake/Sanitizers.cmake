# ORGSYNC_SANITIZE="address,undefined" builds and links everything with those
# sanitizers; UBSan findings abort so that tests fail on them.
if(ORGSYNC_SANITIZE)
  add_compile_options(-fsanitize=${ORGSYNC_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${ORGSYNC_SANITIZE})
  if(ORGSYNC_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
endif()
