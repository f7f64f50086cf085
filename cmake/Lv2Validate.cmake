# stemsphere_add_ttl_validation(NAME LABEL FILE...): a ctest that validates Turtle files against
# the installed LV2 specifications (lv2_validate runs sord_validate) and passes only with 0 errors.
function(stemsphere_add_ttl_validation name label)
  find_program(LV2_VALIDATE lv2_validate)
  if(LV2_VALIDATE)
    add_test(NAME ${name} COMMAND ${LV2_VALIDATE} ${ARGN})
    set_tests_properties(${name} PROPERTIES LABELS ${label}
                         FAIL_REGULAR_EXPRESSION "error:" PASS_REGULAR_EXPRESSION "Found 0 errors")
  endif()
endfunction()
