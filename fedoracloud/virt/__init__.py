"""Everything that talks to libvirt.  The rest of the app calls these, never libvirt itself."""
