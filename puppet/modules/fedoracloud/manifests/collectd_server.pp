# @summary The FedoraCloud collectd server: receives the nodes' signed statistics and
# writes them as RRD files, which the app reads for its graphs.
#
# @param collectd_conf contents of /etc/collectd.conf (network Listen, rrdtool)
# @param auth_file_content the AuthFile: the user and password nodes sign with
# @param auth_file where the AuthFile goes (in /etc, or a directory that exists)
# @param data_dir where rrdtool writes (collectd makes it)
# @param listen the address collectd listens on
# @param port its UDP port
# @param packages the packages the server needs
# @param target_root where to write the files ('/' on a real box; a directory in tests)
# @param manage_packages install the packages
# @param manage_services run collectd and restart it when a file changes
class fedoracloud::collectd_server (
  String $collectd_conf,
  String $auth_file_content,
  Pattern[/\A\//] $auth_file = '/etc/collectd.passwd',
  Pattern[/\A\//] $data_dir = '/var/lib/collectd/rrd',
  String $listen = '0.0.0.0',
  Integer[1, 65535] $port = 25826,
  Array[String] $packages = ['collectd', 'collectd-rrdtool'],
  Pattern[/\A\//] $target_root = '/',
  Boolean $manage_packages = true,
  Boolean $manage_services = true,
) {
  $root = $target_root ? {
    '/'     => '',
    default => regsubst($target_root, '/+$', ''),
  }
  $notify_collectd = $manage_services ? {
    true    => Service['collectd'],
    default => undef,
  }

  if $manage_packages {
    package { $packages:
      ensure => installed,
      before => [File["${root}/etc/collectd.conf"], File["${root}${auth_file}"]],
    }
  }

  if $root != '' {
    file { "${root}/etc":
      ensure => directory,
    }
  }

  file { "${root}/etc/collectd.conf":
    ensure  => file,
    content => $collectd_conf,
    mode    => '0644',
    notify  => $notify_collectd,
  }
  file { "${root}${auth_file}":
    ensure  => file,
    content => $auth_file_content,
    mode    => '0600',
    notify  => $notify_collectd,
  }

  if $manage_services {
    service { 'collectd':
      ensure => running,
      enable => true,
    }
  }
}
