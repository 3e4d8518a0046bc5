# SPDX-License-Identifier: Apache-2.0
# CPack: one deb and one rpm per component, built with "cpack -G DEB" and
# "cpack -G RPM" in the build directory:
#   mm-guest-agent  the guest agent, its unit, udev rule, config, man page
#   mm-host         mm-collector and mm-actuator, units, configs, man pages
#   mm-scheduler    mm-scheduler, unit, config, man page
#   mmctl           mmctl and mm-sim, man pages, the example policy
# The install rules are in each program's CMakeLists.txt (cmake/MmInstall.cmake);
# the maintainer scripts are generated from deploy/packaging/{deb,rpm}/*.in.
include(MmInstall)

set(CPACK_PACKAGE_NAME mm)
set(CPACK_PACKAGE_VENDOR "mm")
set(CPACK_PACKAGE_CONTACT "${MM_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL mm-guest-agent mm-host mm-scheduler mmctl)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_RPM_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_RPM_PACKAGE_LICENSE "Apache-2.0")
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
set(CPACK_RPM_SPEC_MORE_DEFINE "%define packager ${MM_PACKAGE_CONTACT}")
# Directories every system owns must not be claimed by the packages.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
	/etc /usr/bin /usr/sbin /usr/lib /usr/lib/systemd
	/usr/lib/systemd/system /usr/lib/sysusers.d /usr/lib/tmpfiles.d
	/usr/lib/udev /usr/lib/udev/rules.d /usr/share/doc /usr/share/lintian
	/usr/share/lintian/overrides /usr/share/man /usr/share/man/man1
	/usr/share/man/man5 /usr/share/man/man8)
# The install step of "cpack" sets MM_CPACK (cmake/MmInstallFile.cmake).
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_SOURCE_DIR}/cmake/MmCPackProject.cmake)

# The mm user and the directories, for mm-host and mm-scheduler (and
# "make install"). dpkg lets one file belong to one package only, hence a
# sysusers.d file per package; systemd-sysusers merges equal entries.
install(FILES ${CMAKE_SOURCE_DIR}/deploy/sysusers.d/mm.conf
	DESTINATION lib/sysusers.d RENAME mm-host.conf COMPONENT mm-host)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/sysusers.d/mm.conf
	DESTINATION lib/sysusers.d RENAME mm-scheduler.conf
	COMPONENT mm-scheduler)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/tmpfiles.d/mm.conf
	DESTINATION lib/tmpfiles.d RENAME mm-host.conf COMPONENT mm-host)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/packaging/guest-agent.lintian-overrides
	DESTINATION share/lintian/overrides RENAME mm-guest-agent
	COMPONENT mm-guest-agent)

# _mm_script(<template> <output> [<option>...]): the template with the
# lines between "#if <option>" and "#endif <option>" kept only for the
# options given (USER, RELEASE), then its @variables@ replaced.
function(_mm_script in out)
	set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${in})
	file(READ ${in} s)
	foreach(opt USER RELEASE)
		set(begin "#if ${opt}\n")
		set(end "#endif ${opt}\n")
		if(opt IN_LIST ARGN)
			string(REPLACE "${begin}" "" s "${s}")
			string(REPLACE "${end}" "" s "${s}")
			continue()
		endif()
		string(FIND "${s}" "${begin}" a)
		while(a GREATER_EQUAL 0)
			string(FIND "${s}" "${end}" b)
			if(b LESS a)
				message(FATAL_ERROR "${in}: no \"#endif ${opt}\"")
			endif()
			string(LENGTH "${end}" n)
			math(EXPR b "${b} + ${n}")
			string(SUBSTRING "${s}" 0 ${a} head)
			string(SUBSTRING "${s}" ${b} -1 tail)
			set(s "${head}${tail}")
			string(FIND "${s}" "${begin}" a)
		endwhile()
	endforeach()
	file(CONFIGURE OUTPUT ${out} CONTENT "${s}" @ONLY)
endfunction()

# mm_package(<component> SUMMARY <line> DESCRIPTION <text>
#     [UNITS <unit>...] [CONFIGS <file>...] [PASSWORDS <file>...]
#     [DEPENDS <deb depends>] [USER] [START] [RELEASE] [SHARING <pkg>...]):
# the CPack settings and maintainer scripts of one package. CONFIGS and
# PASSWORDS are names in /etc/mm; USER: the mm user (sysusers.d/<component>.conf,
# %pre), /var/lib/mm removed on purge unless a SHARING package remains;
# START: started on first install; RELEASE: mm-actuator --release on removal.
macro(mm_package comp)
	cmake_parse_arguments(p "USER;START;RELEASE" "SUMMARY;DESCRIPTION;DEPENDS"
		"UNITS;CONFIGS;PASSWORDS;SHARING" ${ARGN})
	string(TOUPPER ${comp} c)
	set(PKG ${comp})
	list(JOIN p_UNITS " " PKG_UNITS)
	list(TRANSFORM p_CONFIGS PREPEND /etc/mm/ OUTPUT_VARIABLE confs)
	list(JOIN confs " " PKG_CONFIGS)
	list(TRANSFORM p_PASSWORDS PREPEND /etc/mm/ OUTPUT_VARIABLE pws)
	list(JOIN pws " " PKG_PASSWORDS)
	list(JOIN p_SHARING " " PKG_SHARING)
	set(PKG_TMPFILES "")
	if("${comp}" STREQUAL mm-host)
		set(PKG_TMPFILES /usr/lib/tmpfiles.d/mm-host.conf)
	endif()
	set(PKG_START no)
	if(p_START)
		set(PKG_START yes)
	endif()
	set(opts "")
	foreach(opt USER RELEASE)
		if(p_${opt})
			list(APPEND opts ${opt})
		endif()
	endforeach()
	set(out ${CMAKE_BINARY_DIR}/packaging/${comp})
	set(in ${CMAKE_SOURCE_DIR}/deploy/packaging)
	set(controls "")
	if(p_UNITS)	# a package without units needs no scripts
		foreach(s deb/postinst deb/prerm deb/postrm rpm/pre rpm/post
		    rpm/preun rpm/postun)
			_mm_script(${in}/${s}.in ${out}/${s} ${opts})
		endforeach()
		set(controls ${out}/deb/postinst ${out}/deb/prerm ${out}/deb/postrm)
	endif()
	if(p_CONFIGS)
		list(JOIN confs "\n" conffiles)
		file(WRITE ${out}/deb/conffiles "${conffiles}\n")
		list(APPEND controls ${out}/deb/conffiles)
	endif()

	set(CPACK_COMPONENT_${c}_DESCRIPTION "${p_SUMMARY}\n${p_DESCRIPTION}")
	set(CPACK_DEBIAN_${c}_PACKAGE_NAME ${comp})
	set(CPACK_DEBIAN_${c}_PACKAGE_CONTROL_EXTRA ${controls})
	set(CPACK_DEBIAN_${c}_PACKAGE_CONTROL_STRICT_PERMISSION ON)
	if(p_DEPENDS)
		set(CPACK_DEBIAN_${c}_PACKAGE_DEPENDS "${p_DEPENDS}")
	endif()
	set(CPACK_RPM_${c}_PACKAGE_NAME ${comp})
	set(CPACK_RPM_${c}_PACKAGE_SUMMARY "${p_SUMMARY}")
	set(CPACK_RPM_${c}_PACKAGE_DESCRIPTION "${p_DESCRIPTION}")
	set(filelist "")
	foreach(f ${confs})
		if(p_USER)
			list(APPEND filelist "%config(noreplace) %attr(0640,root,mm) ${f}")
		else()
			list(APPEND filelist "%config(noreplace) ${f}")
		endif()
	endforeach()
	set(CPACK_RPM_${c}_USER_FILELIST "${filelist}")
	if(p_USER)
		set(CPACK_RPM_${c}_PRE_INSTALL_SCRIPT_FILE ${out}/rpm/pre)
		set(CPACK_RPM_${c}_PACKAGE_REQUIRES_PRE "shadow-utils")
	endif()
	if(p_UNITS)
		set(CPACK_RPM_${c}_POST_INSTALL_SCRIPT_FILE ${out}/rpm/post)
		set(CPACK_RPM_${c}_PRE_UNINSTALL_SCRIPT_FILE ${out}/rpm/preun)
		set(CPACK_RPM_${c}_POST_UNINSTALL_SCRIPT_FILE ${out}/rpm/postun)
	endif()
	mm_install_package_docs(${comp})
endmacro()

mm_package(mm-guest-agent
	SUMMARY "Guest agent of mm: reports a VM's memory state to its host"
	DESCRIPTION "Runs inside a virtual machine and reports /proc/meminfo,
/proc/vmstat and memory pressure to the host's mm collector through
xenstore or a virtio-serial port. Started by udev when the port appears."
	UNITS mm-guest-agent.service CONFIGS guest-agent.conf START)
mm_package(mm-host
	SUMMARY "Host daemons of mm: memory statistics, balloon, KSM and NUMA control"
	DESCRIPTION "mm-collector publishes a virtualization host's and its guests'
memory statistics to the mm broker; mm-actuator applies the scheduler's
balloon targets, KSM settings and NUMA moves on the host. Removing the
package releases the guests toward their maximum memory."
	UNITS mm-collector.service mm-actuator.service
	CONFIGS collector.conf actuator.conf PASSWORDS host.password
	DEPENDS "adduser, procps" USER RELEASE SHARING mm-scheduler)
mm_package(mm-scheduler
	SUMMARY "Scheduler of mm: memory decisions for a fleet of hosts"
	DESCRIPTION "mm-scheduler reads every host's memory statistics from the mm
broker and decides balloon targets, KSM settings and NUMA moves by the
policy in force, sending each host its commands."
	UNITS mm-scheduler.service CONFIGS scheduler.conf
	PASSWORDS scheduler.password
	DEPENDS "adduser, procps" USER SHARING mm-host)
mm_package(mmctl
	SUMMARY "Command line tools of mm: control tool and host simulator"
	DESCRIPTION "mmctl shows a fleet's memory state, sets the policy and follows
the events on the mm broker; mm-sim simulates a host with virtual machines
for tests and demonstrations.")

# mm.conf(5), every daemon's configuration, is in mmctl, which both
# daemon packages recommend (with the operator's status command).
foreach(c MM-HOST MM-SCHEDULER)
	set(CPACK_DEBIAN_${c}_PACKAGE_RECOMMENDS "mmctl")
	set(CPACK_RPM_${c}_PACKAGE_SUGGESTS "mmctl")
endforeach()

include(CPack)
