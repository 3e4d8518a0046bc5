# SPDX-License-Identifier: Apache-2.0
# Runs at install time, once per rule of cmake/MmInstall.cmake, with
# MM_MODE (unit, config, password, man, docs), MM_SRC, MM_NAME,
# MM_FILE_MODE, MM_BUILD_DIR, MM_VERSION, MM_CONTACT and the GNUInstallDirs values as configured (MM_SBINDIR,
# MM_SYSCONFDIR, MM_MANDIR: relative to the prefix unless absolute). The
# prefix is the install's: CMAKE_INSTALL_PREFIX of "make install" or
# CPack's /usr. CPack runs it with MM_CPACK set in the environment
# (cmake/MmCPackProject.cmake).
string(REGEX REPLACE "(.)/+$" "\\1" prefix "${CMAKE_INSTALL_PREFIX}")

# As GNUInstallDirs: a relative directory is under the prefix, except
# that the prefixes / and /usr keep their configuration in /etc, and
# /opt/<x> in /etc/opt/<x>.
if(IS_ABSOLUTE "${MM_SBINDIR}")
	set(CMAKE_INSTALL_FULL_SBINDIR "${MM_SBINDIR}")
else()
	set(CMAKE_INSTALL_FULL_SBINDIR "${prefix}/${MM_SBINDIR}")
endif()
if(IS_ABSOLUTE "${MM_SYSCONFDIR}")
	set(CMAKE_INSTALL_FULL_SYSCONFDIR "${MM_SYSCONFDIR}")
elseif(MM_SYSCONFDIR STREQUAL "etc" AND prefix MATCHES "^/(usr)?$")
	set(CMAKE_INSTALL_FULL_SYSCONFDIR /etc)
elseif(MM_SYSCONFDIR STREQUAL "etc" AND prefix MATCHES "^/opt/(.+)$")
	set(CMAKE_INSTALL_FULL_SYSCONFDIR "/etc/opt/${CMAKE_MATCH_1}")
else()
	set(CMAKE_INSTALL_FULL_SYSCONFDIR "${prefix}/${MM_SYSCONFDIR}")
endif()
if(IS_ABSOLUTE "${MM_MANDIR}")
	set(mandir "${MM_MANDIR}")
else()
	set(mandir "${prefix}/${MM_MANDIR}")
endif()
# file(INSTALL) adds DESTDIR itself; tests of what is there must add it.
set(confdir "${CMAKE_INSTALL_FULL_SYSCONFDIR}/mm")
set(destdir "$ENV{DESTDIR}")

# install_as(<source> <directory> <name> <mode>): a copy with that mode
# (as an octal number), listed in install_manifest.txt (a macro, so that
# file(INSTALL) adds to the caller's list).
macro(install_as src dir name mode)
	set(perms OWNER_READ)
	if("${mode}" MATCHES "^0?[67]..$")
		list(APPEND perms OWNER_WRITE)
	endif()
	if("${mode}" MATCHES "^0?.[4-7].$")
		list(APPEND perms GROUP_READ)
	endif()
	if("${mode}" MATCHES "^0?..[4-7]$")
		list(APPEND perms WORLD_READ)
	endif()
	file(INSTALL DESTINATION "${dir}" TYPE FILE PERMISSIONS ${perms}
		FILES "${src}" RENAME "${name}")
endmacro()

# In "make install" as root, where the mm group exists, the group may
# read what is 0640 (the packages' postinst does this for theirs).
function(group_mm path)
	if(NOT "$ENV{MM_CPACK}" AND NOT "$ENV{DESTDIR}")
		execute_process(COMMAND getent group mm RESULT_VARIABLE rc
			OUTPUT_QUIET ERROR_QUIET)
		if(rc EQUAL 0)
			execute_process(COMMAND chgrp mm "${path}"
				OUTPUT_QUIET ERROR_QUIET)
		endif()
	endif()
endfunction()

set(tmp "${MM_BUILD_DIR}/mm-install")
if(MM_MODE STREQUAL unit)
	configure_file("${MM_SRC}" "${tmp}/${MM_NAME}" @ONLY)
	install_as("${tmp}/${MM_NAME}" "${prefix}/lib/systemd/system"
		"${MM_NAME}" 0644)
elseif(MM_MODE STREQUAL config)
	if(EXISTS "${destdir}${confdir}/${MM_NAME}")
		message(STATUS "Keeping: ${destdir}${confdir}/${MM_NAME} (the new one is ${MM_NAME}.new)")
		install_as("${MM_SRC}" "${confdir}" "${MM_NAME}.new" "${MM_FILE_MODE}")
	else()
		install_as("${MM_SRC}" "${confdir}" "${MM_NAME}" "${MM_FILE_MODE}")
		group_mm("${confdir}/${MM_NAME}")
	endif()
elseif(MM_MODE STREQUAL password)
	if(NOT "$ENV{MM_CPACK}" AND NOT EXISTS "${destdir}${confdir}/${MM_NAME}")
		file(WRITE "${tmp}/empty" "")
		install_as("${tmp}/empty" "${confdir}" "${MM_NAME}" 0640)
		group_mm("${confdir}/${MM_NAME}")
	endif()
elseif(MM_MODE STREQUAL man)
	string(REGEX REPLACE "^.*\\.([0-9])$" "\\1" section "${MM_NAME}")
	execute_process(COMMAND gzip -9n -c "${MM_SRC}"
		OUTPUT_FILE "${tmp}/${MM_NAME}.gz" RESULT_VARIABLE rc)
	if(NOT rc EQUAL 0)
		message(FATAL_ERROR "gzip ${MM_SRC}: ${rc}")
	endif()
	install_as("${tmp}/${MM_NAME}.gz" "${mandir}/man${section}"
		"${MM_NAME}.gz" 0644)
elseif(MM_MODE STREQUAL docs)
	if("$ENV{MM_CPACK}")
		# A native Debian package's changelog (Debian policy 12.7).
		string(TIMESTAMP date "%a, %d %b %Y %H:%M:%S +0000" UTC)
		file(WRITE "${tmp}/changelog" "${MM_NAME} (${MM_VERSION}) unstable; urgency=medium

  * Built from the mm source tree; its git history is the changelog.

 -- ${MM_CONTACT}  ${date}
")
		execute_process(COMMAND gzip -9n -f "${tmp}/changelog"
			RESULT_VARIABLE rc)
		if(NOT rc EQUAL 0)
			message(FATAL_ERROR "gzip changelog: ${rc}")
		endif()
		set(docdir "${prefix}/share/doc/${MM_NAME}")
		install_as("${tmp}/changelog.gz" "${docdir}" changelog.gz 0644)
		install_as("${MM_SRC}" "${docdir}" copyright 0644)
	endif()
else()
	message(FATAL_ERROR "MmInstallFile.cmake: unknown mode \"${MM_MODE}\"")
endif()
