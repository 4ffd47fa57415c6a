package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// checkContainer resolves and checks a service's container keys against the rest of the file: its networks,
// static addresses, internal_dns, traefik labels, the host addresses of its ports, and +job references.
func (d *decoder) checkContainer(s *Settings, m *svcMeta) {
	svc := m.svc
	srv := s.Server(svc.Server)
	if srv == nil {
		return // reported as a missing server
	}
	prefix := s.Prefix(svc.Server)
	nets := s.Networks(svc.Server)
	var names []string
	for _, n := range nets {
		names = append(names, n.Name)
	}
	for _, n := range m.c.networks {
		if n.val != "network" && !slices.ContainsFunc(nets, func(x *Network) bool { return x.Name == n.val }) {
			d.errorf(n.node, n.path, "no network %q on server %s (%q is the default network)%s", n.val, svc.Server, "network", didYouMean(n.val, names))
		}
	}
	// The primary network: the first listed, else the default one.
	var primary *Network
	if len(svc.Networks) > 0 {
		for _, n := range nets {
			if n.Name == svc.Networks[0] {
				primary = n
			}
		}
	}
	if m.c.ipv6Web != nil {
		switch {
		case srv.StateIPv6Subnet == "":
			d.errorf(m.c.ipv6Web, joinPath(m.path, "ipv6_web"), "ipv6_web needs servers.%s.ipv6.subnet in the provisioner's state file (provisioner.state_file)", svc.Server)
		case srv.IPv6Docker.StaticWeb == "":
			d.errorf(m.c.ipv6Web, joinPath(m.path, "ipv6_web"), "ipv6_web needs servers.%s.ipv6.docker.static_web", svc.Server)
		default:
			addr := srv.StateIPv6Subnet + srv.IPv6Docker.StaticWeb
			if a, err := netip.ParseAddr(addr); err != nil || !a.Is6() {
				d.errorf(m.c.ipv6Web, joinPath(m.path, "ipv6_web"), "the state file's subnet %q and static_web %q make %q, not an IPv6 address",
					srv.StateIPv6Subnet, srv.IPv6Docker.StaticWeb, addr)
			} else {
				// Bee2: ipv6_web wins over static_ip.ipv6.
				svc.StaticIPv6 = addr
			}
		}
	}
	if m.c.staticIP != nil {
		sp := joinPath(m.path, "static_ip")
		check := func(addr, subnet, family string) {
			if addr == "" {
				return
			}
			if subnet == "" {
				where := "the default network"
				if primary != nil {
					where = "network " + primary.Name
				}
				d.errorf(m.c.staticIP, sp, "a static %s address needs its primary network to have an %s subnet; %s has none", family, family, where)
				return
			}
			if p, err := netip.ParsePrefix(subnet); err == nil && !p.Contains(netip.MustParseAddr(addr)) {
				d.errorf(m.c.staticIP, sp, "%s is not in %s's subnet %s", addr, primary.Name, subnet)
			}
		}
		if primary != nil {
			check(svc.StaticIPv4, primary.IPv4, "ipv4")
			check(svc.StaticIPv6, primary.IPv6, "ipv6")
		} else {
			check(svc.StaticIPv4, "", "ipv4")
		}
	}
	for _, e := range m.c.internalDNS {
		ep := joinPath(joinPath(m.path, "internal_dns"), e.Key)
		target := e.Val.Value
		a := s.App(svc.Server, target)
		if a == nil {
			var apps []string
			for _, x := range s.Applications {
				if x.Server == svc.Server {
					apps = append(apps, x.Name)
				}
			}
			d.errorf(e.Val, ep, "no application %q on server %s%s", target, svc.Server, didYouMean(target, apps))
			continue
		}
		tm := d.meta(a)
		if tm == nil || tm.c.staticIP == nil {
			d.errorf(e.Val, ep, "application %q has no static_ip to point %s at", target, e.Key)
			continue
		}
		for _, fam := range tm.c.staticOrder {
			ip := a.StaticIPv4
			if fam == "ipv6" {
				ip = a.StaticIPv6
			}
			if ip != "" {
				svc.ExtraHosts = append(svc.ExtraHosts, e.Key+":"+ip)
			}
		}
	}
	if m.traefik != nil {
		traefikLabels(svc, ContainerName(prefix, svc.Kind, svc.Name), m.traefikHosts, m.traefikPort, m.traefikTLS)
	}
	// Bee2's host addresses: ipv4 for IPv4, and the host IPv6 address of the first network listed.
	defaults := []string{m.c.ipv4}
	if len(svc.Networks) > 0 {
		if h, ok := srv.IP[svc.Networks[0]]; ok && h.IPv6 != "" {
			defaults = append(defaults, h.IPv6)
		}
	}
	if len(defaults) == 1 && defaults[0] == "" {
		defaults = nil
	}
	for i := range m.ports {
		p := &m.ports[i]
		if p.hostIPs == nil {
			p.hostIPs = defaults
		}
		svc.Ports = append(svc.Ports, Port{ContainerPort: p.container, HostPort: p.port, Proto: p.proto, HostIPs: p.hostIPs})
	}
	for _, r := range m.jobRefs {
		if s.JobOn(svc.Server, r.name) != nil {
			continue
		}
		var jobs []string
		for _, j := range s.Jobs {
			if j.Server == svc.Server {
				jobs = append(jobs, j.Name)
			}
		}
		d.errorf(r.node, r.path, "no job %q on server %s%s (write %q for a literal %q)", r.name, svc.Server, didYouMean(r.name, jobs), "++"+r.name, "+"+r.name)
	}
}

// meta returns the decoder's record of a service.
func (d *decoder) meta(svc *Service) *svcMeta {
	for _, m := range d.svcs {
		if m.svc == svc {
			return m
		}
	}
	return nil
}

// checkPorts reports a host port published twice on one server: the same protocol and port on addresses that
// overlap (none, or an empty one, is every address). The later one in the file is the error.
func (d *decoder) checkPorts() {
	type use struct {
		portItem
		svc *Service
	}
	var uses []use
	for _, m := range d.svcs {
		for _, p := range m.ports {
			uses = append(uses, use{p, m.svc})
		}
	}
	slices.SortStableFunc(uses, func(a, b use) int {
		return cmp.Or(cmp.Compare(a.node.Line, b.node.Line), cmp.Compare(a.node.Column, b.node.Column))
	})
	overlap := func(a, b []string) bool {
		if len(a) == 0 || len(b) == 0 || slices.Contains(a, "") || slices.Contains(b, "") {
			return true
		}
		for _, x := range a {
			if slices.Contains(b, x) {
				return true
			}
		}
		return false
	}
	var seen []use
	for _, u := range uses {
		clash := slices.IndexFunc(seen, func(o use) bool {
			return o.svc.Server == u.svc.Server && o.port == u.port && o.proto == u.proto && overlap(o.hostIPs, u.hostIPs)
		})
		if clash >= 0 {
			o := seen[clash]
			what := fmt.Sprintf("port %d", u.port)
			if u.proto != "tcp" {
				what += "/" + u.proto
			}
			if len(u.hostIPs) == 1 && u.hostIPs[0] != "" {
				what += " on " + u.hostIPs[0]
			}
			where := ""
			if o.node.Line != u.node.Line {
				where = fmt.Sprintf(" (line %d)", o.node.Line)
			}
			d.errorf(u.node, u.path, "%s is already published by %s %q%s", what, kindWord(o.svc.Kind), o.svc.Name, where)
			continue
		}
		seen = append(seen, u)
	}
}

// checkAddresses reports a static address given to two containers on one network of a server: the engine
// would refuse the second. (Bee2 gave every ipv6_web container the same address.)
func (d *decoder) checkAddresses(s *Settings) {
	type key struct{ server, network, addr string }
	first := map[key]*svcMeta{}
	for _, m := range d.svcs {
		svc := m.svc
		if m.c.staticIP == nil && m.c.ipv6Web == nil {
			continue
		}
		network := "network"
		if len(svc.Networks) > 0 {
			network = svc.Networks[0]
		}
		for _, a := range []string{svc.StaticIPv4, svc.StaticIPv6} {
			if a == "" {
				continue
			}
			k := key{svc.Server, network, a}
			if f := first[k]; f != nil {
				at := m.c.staticIP
				if at == nil || (a == svc.StaticIPv6 && m.c.ipv6Web != nil) {
					at = m.c.ipv6Web
				}
				d.errorf(at, joinPath(m.path, at.Value), "address %s is also %s %q's (line %d): two containers cannot share an address on one network",
					a, kindWord(f.svc.Kind), f.svc.Name, f.key.Line)
				continue
			}
			first[k] = m
		}
	}
}
