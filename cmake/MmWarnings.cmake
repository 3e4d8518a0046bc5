# SPDX-License-Identifier: Apache-2.0
# Warning flags for our own code: strict, and errors. Generated protobuf-c code
# is compiled without them (see MmProtobuf.cmake).
set(MM_WARNINGS
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
	-Wformat=2 -Wno-unused-parameter -Werror)

# mm_target_warnings(<target>): apply the project's warning flags to a target.
function(mm_target_warnings target)
	target_compile_options(${target} PRIVATE ${MM_WARNINGS})
endfunction()
