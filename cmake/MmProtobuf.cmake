# SPDX-License-Identifier: Apache-2.0
# Generates protobuf-c sources from proto/ into the build tree; nothing
# generated is ever committed.
find_program(PROTOC_C NAMES protoc-c protoc-gen-c REQUIRED)

# mm_protobuf_generate(<out-var-srcs> <proto-root> <file.proto>...)
function(mm_protobuf_generate out_srcs proto_root)
	set(srcs)
	foreach(proto ${ARGN})
		file(RELATIVE_PATH rel ${proto_root} ${proto})
		string(REGEX REPLACE "\\.proto$" "" base ${rel})
		set(c ${CMAKE_CURRENT_BINARY_DIR}/${base}.pb-c.c)
		set(h ${CMAKE_CURRENT_BINARY_DIR}/${base}.pb-c.h)
		add_custom_command(
			OUTPUT ${c} ${h}
			COMMAND ${PROTOC_C} --proto_path=${proto_root}
				--c_out=${CMAKE_CURRENT_BINARY_DIR} ${proto}
			DEPENDS ${proto}
			COMMENT "protoc-c ${rel}")
		list(APPEND srcs ${c})
	endforeach()
	set(${out_srcs} ${srcs} PARENT_SCOPE)
endfunction()
