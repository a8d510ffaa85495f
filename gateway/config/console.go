package config

import (
	"net"
	"time"
)

func (v *validator) console() {
	cn := v.c.Console
	if !cn.Enabled {
		return
	}
	if v.c.Health.Listen == "" {
		v.add("console.enabled", "needs health.listen: the page is served on the health listener")
	}
	if cn.History.D() < time.Minute || cn.History.D() > 24*time.Hour {
		v.add("console.history", "%v outside 1m..24h", cn.History.D())
	}
	if cn.MaxPoints < 10 || cn.MaxPoints > 100000 {
		v.add("console.max_points", "%d outside 10..100000", cn.MaxPoints)
	}
	if cn.MaxSeries < 1 || cn.MaxSeries > 10000 {
		v.add("console.max_series", "%d outside 1..10000", cn.MaxSeries)
	}
	if cn.Interval.D() < 100*time.Millisecond || cn.Interval.D() > time.Minute {
		v.add("console.interval", "%v outside 100ms..1m", cn.Interval.D())
	}
	if (cn.TLSCert == "") != (cn.TLSKey == "") {
		v.add("console.tls_cert", "tls_cert and tls_key go together")
	}
	if cn.Commands && v.c.Broker.PasswordFile == "" {
		v.add("console.commands", "needs broker.password_file: users log in with its accounts")
	}
	if v.c.Health.Listen != "" && !LoopbackAddr(v.c.Health.Listen) && cn.TLSCert == "" && !cn.InsecureRemote {
		v.add("console.enabled", "health.listen %q is not loopback: set tls_cert and tls_key, or insecure_remote = true", v.c.Health.Listen)
	}
}

// LoopbackAddr reports whether the host of addr (host:port) is a loopback
// address or "localhost"; an empty host (every interface) is not.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
