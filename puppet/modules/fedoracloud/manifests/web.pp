# @summary A FedoraCloud UI box: httpd with TLS in front of the app, consoles over WebSocket.
#
# The FedoraCloud ENC gives this class to the certnames listed in the app's
# `fedoracloud.web.certnames`, with the conf.d file the app rendered.
#
# @param httpd_conf contents of /etc/httpd/conf.d/fedoracloud.conf
# @param server_name the name the UI answers to
# @param packages the packages a UI box needs
# @param target_root where to write the file ('/' on a real box; a directory in tests)
# @param manage_packages install the packages
# @param manage_services run httpd and reload it when the file changes
class fedoracloud::web (
  String $httpd_conf,
  String $server_name = '',
  Array[String] $packages = ['httpd', 'mod_ssl'],
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
      before => File["${root}/etc/httpd/conf.d/fedoracloud.conf"],
    }
  }

  if $root != '' {
    file { ["${root}/etc", "${root}/etc/httpd", "${root}/etc/httpd/conf.d"]:
      ensure => directory,
    }
  }

  file { "${root}/etc/httpd/conf.d/fedoracloud.conf":
    ensure  => file,
    content => $httpd_conf,
    mode    => '0644',
    notify  => $manage_services ? {
      true    => Service['httpd'],
      default => undef,
    },
  }

  if $manage_services {
    service { 'httpd':
      ensure => running,
      enable => true,
    }
  }
}
