# @summary A FedoraCloud node: a KVM host driven by the FedoraCloud app over libvirt TLS.
#
# The FedoraCloud ENC (`fedoracloud enc CERTNAME`) classifies approved hosts with this
# class and passes the files the app rendered as parameters, so the app and Puppet never
# disagree on their contents.  The other parameters say what the files were made of.
#
# @param collectd_conf contents of /etc/collectd.conf (virt plugin, signed network plugin)
# @param libvirt_qpid_sysconfig contents of /etc/sysconfig/libvirt-qpid
# @param iptables_rules contents of /etc/sysconfig/iptables (iptables-save format)
# @param libvirtd_conf contents of /etc/libvirt/libvirtd.conf (TLS only)
# @param network_scripts ifcfg file name => contents, for /etc/sysconfig/network-scripts/:
#   the bridges (and VLAN devices) of the networks the node's hardware pool carries.  They
#   take effect when the network is next brought up; Puppet does not restart the network of
#   a node whose VMs use it.
# @param server the FedoraCloud app's server name
# @param collectd_server where collectd sends statistics
# @param collectd_port its UDP port
# @param qpid_broker the QMF broker libvirt-qpid talks to
# @param qpid_port its port
# @param management_network the network the cloud's ports are open to
# @param console_proxy the console proxy's address (VNC is open to it too)
# @param ports the TCP ports opened to the management network
# @param libvirt_tls_port libvirtd's TLS port
# @param tls_ca_file the CA libvirtd trusts
# @param tls_cert_file libvirtd's certificate
# @param tls_key_file libvirtd's key
# @param tls_allowed_dn the client certificate DN libvirtd accepts (the app's)
# @param packages the packages a node needs
# @param target_root where to write the files ('/' on a real node; a directory in tests)
# @param manage_packages install the packages
# @param manage_services run the services and restart them when their file changes
class fedoracloud::node (
  String $collectd_conf,
  String $libvirt_qpid_sysconfig,
  String $iptables_rules,
  String $libvirtd_conf,
  Hash[Pattern[/\Aifcfg-[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\z/], String] $network_scripts = {},
  String $server = '',
  String $collectd_server = '',
  Integer[1, 65535] $collectd_port = 25826,
  String $qpid_broker = '',
  Integer[1, 65535] $qpid_port = 5672,
  String $management_network = '',
  String $console_proxy = '',
  Hash[String, String] $ports = {},
  Integer[1, 65535] $libvirt_tls_port = 16514,
  String $tls_ca_file = '/etc/pki/CA/cacert.pem',
  String $tls_cert_file = '/etc/pki/libvirt/servercert.pem',
  String $tls_key_file = '/etc/pki/libvirt/private/serverkey.pem',
  String $tls_allowed_dn = '',
  Array[String] $packages = ['libvirt', 'libvirt-qpid', 'collectd', 'collectd-virt'],
  Pattern[/\A\//] $target_root = '/',
  Boolean $manage_packages = true,
  Boolean $manage_services = true,
) {
  $root = $target_root ? {
    '/'     => '',
    default => regsubst($target_root, '/+$', ''),
  }

  if $manage_packages {
    package { $packages:
      ensure => installed,
      before => [
        File["${root}/etc/collectd.conf"],
        File["${root}/etc/sysconfig/libvirt-qpid"],
        File["${root}/etc/sysconfig/iptables"],
        File["${root}/etc/libvirt/libvirtd.conf"],
      ],
    }
  }

  if $root != '' {
    file { ["${root}/etc", "${root}/etc/sysconfig", "${root}/etc/libvirt"]:
      ensure => directory,
    }
  }

  $services = $manage_services ? {
    true    => {
      'collectd'     => Service['collectd'],
      'libvirtd'     => Service['libvirtd'],
      'libvirt-qpid' => Service['libvirt-qpid'],
      'iptables'     => Service['iptables'],
    },
    default => {},
  }

  file { "${root}/etc/collectd.conf":
    ensure  => file,
    content => $collectd_conf,
    mode    => '0600',
    notify  => $services['collectd'],
  }
  file { "${root}/etc/sysconfig/libvirt-qpid":
    ensure  => file,
    content => $libvirt_qpid_sysconfig,
    mode    => '0644',
    notify  => $services['libvirt-qpid'],
  }
  file { "${root}/etc/sysconfig/iptables":
    ensure  => file,
    content => $iptables_rules,
    mode    => '0600',
    notify  => $services['iptables'],
  }
  file { "${root}/etc/libvirt/libvirtd.conf":
    ensure  => file,
    content => $libvirtd_conf,
    mode    => '0644',
    notify  => $services['libvirtd'],
  }

  unless $network_scripts.empty {
    file { "${root}/etc/sysconfig/network-scripts":
      ensure => directory,
    }
    $network_scripts.each |$script, $content| {
      file { "${root}/etc/sysconfig/network-scripts/${script}":
        ensure  => file,
        content => $content,
        mode    => '0644',
      }
    }
  }

  if $manage_services {
    service { ['collectd', 'libvirtd', 'libvirt-qpid', 'iptables']:
      ensure => running,
      enable => true,
    }
  }
}
