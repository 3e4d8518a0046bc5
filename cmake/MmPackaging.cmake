# SPDX-License-Identifier: Apache-2.0
# CPack: one deb and one rpm per installable component. Today that is
# mm-guest-agent (binary, unit, conffile, man page); build them with
# "cpack -G DEB" and "cpack -G RPM" in the build directory.
set(CPACK_PACKAGE_NAME mm)
set(CPACK_PACKAGE_VENDOR "mm")
set(CPACK_PACKAGE_CONTACT "mm developers <mm@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL mm-guest-agent)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_RPM_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_RPM_PACKAGE_LICENSE "Apache-2.0")
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
# Directories every system owns must not be claimed by the package.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
	/etc /usr/lib/systemd /usr/lib/systemd/system /usr/share/man
	/usr/share/man/man8)

set(pkg ${CMAKE_SOURCE_DIR}/deploy/packaging/guest-agent)
set(CPACK_COMPONENT_MM-GUEST-AGENT_DESCRIPTION
	"mm guest agent: reports a VM's memory state to its host
Runs inside a virtual machine and reports /proc/meminfo, /proc/vmstat and
memory pressure to the host's mm collector through xenstore or a
virtio-serial port.")
set(CPACK_DEBIAN_MM-GUEST-AGENT_PACKAGE_NAME mm-guest-agent)
set(CPACK_DEBIAN_MM-GUEST-AGENT_PACKAGE_CONTROL_EXTRA
	${pkg}/deb/postinst ${pkg}/deb/prerm ${pkg}/deb/postrm
	${pkg}/deb/conffiles)
set(CPACK_RPM_MM-GUEST-AGENT_PACKAGE_NAME mm-guest-agent)
set(CPACK_RPM_MM-GUEST-AGENT_PACKAGE_SUMMARY
	"mm guest agent: reports a VM's memory state to its host")
set(CPACK_RPM_MM-GUEST-AGENT_USER_FILELIST
	"%config(noreplace) /etc/mm/guest-agent.conf")
set(CPACK_RPM_MM-GUEST-AGENT_POST_INSTALL_SCRIPT_FILE ${pkg}/rpm/post)
set(CPACK_RPM_MM-GUEST-AGENT_PRE_UNINSTALL_SCRIPT_FILE ${pkg}/rpm/preun)
set(CPACK_RPM_MM-GUEST-AGENT_POST_UNINSTALL_SCRIPT_FILE ${pkg}/rpm/postun)

include(CPack)
