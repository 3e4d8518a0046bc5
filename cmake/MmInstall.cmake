# SPDX-License-Identifier: Apache-2.0
# Install rules whose paths are those of the install, not of the
# configure step: "make install" uses CMAKE_INSTALL_PREFIX (/usr/local by
# default) while CPack installs the same build with prefix /usr (and
# /etc), so the units' ExecStart= paths and the config directory are
# worked out when installing, by cmake/MmInstallFile.cmake.
include_guard(GLOBAL)
include(GNUInstallDirs)
set(MM_PACKAGE_CONTACT "mm maintainers <maintainers@mm.example>" CACHE STRING
	"Maintainer of the deb and rpm packages, \"Name <address>\"")

function(_mm_install_rule comp mode src name)
	install(CODE "set(MM_MODE ${mode})
set(MM_SRC \"${src}\")
set(MM_NAME \"${name}\")
set(MM_FILE_MODE \"${ARGN}\")
set(MM_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
set(MM_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")
set(MM_MANDIR \"${CMAKE_INSTALL_MANDIR}\")
set(MM_VERSION \"${PROJECT_VERSION}\")
set(MM_CONTACT \"${MM_PACKAGE_CONTACT}\")
set(MM_BUILD_DIR \"${CMAKE_BINARY_DIR}\")
include(\"${CMAKE_SOURCE_DIR}/cmake/MmInstallFile.cmake\")"
		COMPONENT ${comp})
endfunction()

# mm_install_unit(<unit> <component>): deploy/systemd/<unit>.in to
# <prefix>/lib/systemd/system/<unit>, with @CMAKE_INSTALL_FULL_SBINDIR@
# and @CMAKE_INSTALL_FULL_SYSCONFDIR@ those of the install.
function(mm_install_unit unit comp)
	_mm_install_rule(${comp} unit
		${CMAKE_SOURCE_DIR}/deploy/systemd/${unit}.in ${unit})
endfunction()

# mm_install_config(<file> <component> [<mode>]): deploy/<file> to
# <sysconfdir>/mm/<file>, mode 0640 unless given (e.g. 0644). An existing
# file is never replaced: the new one goes beside it as <file>.new.
function(mm_install_config file comp)
	set(mode 0640)
	if(ARGC GREATER 2)
		set(mode ${ARGV2})
	endif()
	_mm_install_rule(${comp} config ${CMAKE_SOURCE_DIR}/deploy/${file}
		${file} ${mode})
endfunction()

# mm_install_password(<file> <component>): an empty <sysconfdir>/mm/<file>,
# 0640, if there is none, so that the units' LoadCredential= finds it.
# Not in packages: their postinst creates it.
function(mm_install_password file comp)
	_mm_install_rule(${comp} password "" ${file})
endfunction()

# mm_install_man(<page> <component>): docs/man/<page>, gzipped, to
# <mandir>/man<section>.
function(mm_install_man page comp)
	_mm_install_rule(${comp} man ${CMAKE_SOURCE_DIR}/docs/man/${page}
		${page})
endfunction()

# mm_install_package_docs(<component>): in packages only,
# /usr/share/doc/<component>/copyright and changelog.gz.
function(mm_install_package_docs comp)
	_mm_install_rule(${comp} docs
		${CMAKE_SOURCE_DIR}/deploy/packaging/copyright ${comp})
endfunction()
