package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

var updateRender = flag.Bool("update-render", false, "rewrite the render goldens under testdata/bee2spec")

// fakeHead resolves every git branch to a commit made from its URL and branch, so the goldens do not depend
// on remotes.
func fakeHead(url, branch string) (string, error) {
	sum := sha1.Sum([]byte(url + "#" + branch))
	return hex.EncodeToString(sum[:]), nil
}

// renderSpec loads testdata/bee2spec/<suite>.yml (copied, with its state file and dockerfiles, to a private
// directory: the settings must not be readable by others), renders it, compares it with <suite>.json and
// returns it decoded.
func renderSpec(t *testing.T, suite string) map[string]any {
	t.Helper()
	dir := t.TempDir()
	copyTree(t, filepath.Join("testdata", "bee2spec"), dir)
	s, err := config.Load(filepath.Join(dir, suite+".yml"))
	if err != nil {
		t.Fatal(err)
	}
	servers, _ := selectServers(s, "")
	out, err := render(s, servers, reconcile.Sources{Digest: dockerx.ContextDigest, Head: fakeHead}, false)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "bee2spec", suite+".json")
	if *updateRender {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("render of %s.yml differs from %s (go test -run TestRender -update-render rewrites it):\n%s", suite, golden, out)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// at walks a decoded JSON document by keys; nil when a key is missing.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func userLabels(v any) map[string]any {
	out := map[string]any{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		if !strings.HasPrefix(k, "io.bee2d.") {
			out[k] = x
		}
	}
	return out
}

func equalJSON(t *testing.T, what string, got any, wantJSON string) {
	t.Helper()
	var want any
	if err := json.Unmarshal([]byte(wantJSON), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		t.Errorf("%s = %s, want %s", what, g, wantJSON)
	}
}

// TestRenderDockerSpec checks what spec/docker_spec.rb asserts, on bee2d's render of the same settings.
func TestRenderDockerSpec(t *testing.T) {
	doc := renderSpec(t, "docker")
	w1 := func(name string, keys ...string) any {
		return at(doc, append([]string{"web1", "containers", name}, keys...)...)
	}
	w2 := func(name string, keys ...string) any {
		return at(doc, append([]string{"web2", "containers", name}, keys...)...)
	}

	// Restart policies: applications unless-stopped, jobs no; no container bleeds from one server to the other.
	for _, server := range []string{"web1", "web2"} {
		prefix := map[string]string{"web1": "foo2-", "web2": "bar3-"}[server]
		containers, _ := at(doc, server, "containers").(map[string]any)
		if len(containers) == 0 {
			t.Fatalf("%s: no containers", server)
		}
		for name, c := range containers {
			want := "unless-stopped"
			if strings.Contains(name, "-job-") {
				want = "no"
			}
			if got := at(c, "HostConfig", "RestartPolicy", "Name"); got != want {
				t.Errorf("%s: restart policy %v, want %s", name, got, want)
			}
			if !strings.HasPrefix(name, prefix) {
				t.Errorf("%s: container %s lacks the server's prefix %s", server, name, prefix)
			}
			if at(c, "HostConfig", "Links") != nil {
				t.Errorf("%s: uses links", name)
			}
		}
	}
	env := strs(w1("foo2-app-haproxy", "Env"))
	for _, want := range []string{"CERTBOT_CONTAINER=foo2-app-certbot",
		"DOMAINS=foo2-app-mail:mail.penguindreams.org foo2-app-nginx-static:dyject.com/80,penguindreams.org/9000,rearviewmirror.cc"} {
		if !slices.Contains(env, want) {
			t.Errorf("haproxy env %q lacks %q", env, want)
		}
	}
	if env := strs(w1("foo2-app-cron", "Env")); !slices.Contains(env, "RUN_CONTAINER=foo2-job-runner") || w1("foo2-app-cron", "Cmd") != nil {
		t.Errorf("cron: env %q, cmd %v", env, w1("foo2-app-cron", "Cmd"))
	}
	if cmd := strs(w1("foo2-app-image-poster", "Cmd")); !slices.Equal(cmd, []string{"some_command", "-a", "-f", "-t"}) {
		t.Errorf("image-poster cmd %q", cmd)
	}
	equalJSON(t, "image-poster labels", userLabels(w1("foo2-app-image-poster", "Labels")), `{"lbl1":"some.label.attr","lbl2":"some.other.label.attr"}`)
	equalJSON(t, "single-db-app labels", userLabels(w1("foo2-app-single-db-app", "Labels")), `{}`)
	// Keys upper-cased on web1 (Bee2's README), as written on web2 (env_keys: as-written, Bee2's 2021 code).
	equalJSON(t, "web1 con env", w1("foo2-app-con", "Env"), `["LOCATION=Melbourne"]`)
	equalJSON(t, "web2 con env", w2("bar3-app-con", "Env"), `["location=Wellington"]`)
	if !slices.Contains(strs(w1("foo2-job-runner", "Env")), "TYPE=task") || !slices.Contains(strs(w2("bar3-job-runner", "Env")), "type=batch") {
		t.Errorf("runner env: %v, %v", w1("foo2-job-runner", "Env"), w2("bar3-job-runner", "Env"))
	}
	equalJSON(t, "haproxy exposed ports", w1("foo2-app-haproxy", "ExposedPorts"), `{"80/tcp":{},"443/tcp":{}}`)
	equalJSON(t, "haproxy port bindings", w1("foo2-app-haproxy", "HostConfig", "PortBindings"), `{"80/tcp":[{"HostPort":"80"}],"443/tcp":[{"HostPort":"443"}]}`)
	equalJSON(t, "haproxy binds", w1("foo2-app-haproxy", "HostConfig", "Binds"),
		`["letsencrypt:/etc/letsencrypt:rw","haproxycfg:/etc/haproxy:rw","/var/run/docker.sock:/var/run/docker.sock"]`)
	// ipv6_web: the state file's subnet plus static_web, on the default network.
	if got := w1("foo2-app-haproxy", "NetworkingConfig", "EndpointsConfig", "foo2-network", "IPAMConfig", "IPv6Address"); got != "fd00:a:b:c::2:0:a" {
		t.Errorf("haproxy IPv6 address %v", got)
	}
	if got := w1("foo2-app-nginx-static", "NetworkingConfig", "EndpointsConfig", "foo2-network", "IPAMConfig"); got != nil {
		t.Errorf("nginx-static has a static address: %v", got)
	}
	equalJSON(t, "irc port bindings", w2("bar3-app-irc", "HostConfig", "PortBindings"),
		`{"6667/tcp":[{"HostIp":"100.100.100.1","HostPort":"6667"}],"6668/tcp":[{"HostIp":"100.100.100.1","HostPort":"6668"}]}`)
	equalJSON(t, "gopher port bindings", w2("bar3-app-gopher", "HostConfig", "PortBindings"), `{"70/tcp":[{"HostPort":"70"}]}`)
	// The default network of web1 has IPv6 from the state file and suffix_net; web2 has no state.
	equalJSON(t, "web1 default network IPAM", at(doc, "web1", "networks", "foo2-network", "IPAM", "Config"), `[{"Subnet":"fd00:a:b:c::2:0:0/96"}]`)
	if at(doc, "web1", "networks", "foo2-network", "EnableIPv6") != true || at(doc, "web2", "networks", "bar3-network", "EnableIPv6") == true {
		t.Errorf("EnableIPv6: web1 %v, web2 %v", at(doc, "web1", "networks", "foo2-network", "EnableIPv6"), at(doc, "web2", "networks", "bar3-network", "EnableIPv6"))
	}
}

// TestRenderMultinetSpec checks what spec/docker_multinet_spec.rb asserts.
func TestRenderMultinetSpec(t *testing.T) {
	doc := renderSpec(t, "multinet")
	endpoints := func(name string) []string {
		m, _ := at(doc, "leaderone", "containers", name, "NetworkingConfig", "EndpointsConfig").(map[string]any)
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	for name, want := range map[string][]string{
		"am-app-superbot": {"am-public"}, "am-app-hiddenbot": {"am-anon"}, "am-app-disconbot": {"am-network"},
		"am-job-goodjob": {"am-public"}, "am-job-secretjob": {"am-anon"}, "am-job-ujob": {"am-network"},
		"am-app-frontendbot": {"am-nosix", "am-public"},
	} {
		if got := endpoints(name); !slices.Equal(got, want) {
			t.Errorf("%s networks %q, want %q", name, got, want)
		}
	}
	// The primary network is the one the container is created on.
	if got := at(doc, "leaderone", "containers", "am-app-frontendbot", "HostConfig", "NetworkMode"); got != "am-public" {
		t.Errorf("frontendbot network mode %v", got)
	}
	equalJSON(t, "frontendbot port bindings", at(doc, "leaderone", "containers", "am-app-frontendbot", "HostConfig", "PortBindings"),
		`{"10/tcp":[{"HostPort":"10"},{"HostIp":"a:b:c::d102","HostPort":"10"}],"4410/tcp":[{"HostPort":"4410"},{"HostIp":"a:b:c::d102","HostPort":"4410"}]}`)

	nets, _ := at(doc, "leaderone", "networks").(map[string]any)
	if len(nets) != 5 { // the default network and the four named ones
		t.Errorf("%d networks, want 5: %v", len(nets), nets)
	}
	net := func(name string, keys ...string) any { return at(nets, append([]string{"am-" + name}, keys...)...) }
	for name, six := range map[string]bool{"public": true, "anon": true, "nosix": false, "onlysix": true} {
		if got, _ := net(name, "EnableIPv6").(bool); got != six {
			t.Errorf("%s EnableIPv6 %v, want %v", name, got, six)
		}
	}
	equalJSON(t, "public subnets", net("public", "IPAM", "Config"), `[{"Subnet":"fd00:20:10aa::/48"},{"Subnet":"172.20.0.0/24"}]`)
	equalJSON(t, "nosix subnets", net("nosix", "IPAM", "Config"), `[{"Subnet":"10.9.8.0/24"}]`)
	equalJSON(t, "onlysix subnets", net("onlysix", "IPAM", "Config"), `[{"Subnet":"fd00:10:9988::/48"}]`)
	opt := func(name, key string) any { return net(name, "Options", "com.docker.network."+key) }
	for name, want := range map[string]any{"public": "10.20.30.40", "anon": "1.2.3.4", "nosix": "169.198.10.1", "onlysix": nil} {
		if got := opt(name, "bridge.host_binding_ipv4"); got != want {
			t.Errorf("%s host_binding_ipv4 %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]any{"public": "false", "anon": "false", "nosix": nil, "onlysix": nil} {
		if got := opt(name, "bridge.enable_ip_masquerade"); got != want {
			t.Errorf("%s enable_ip_masquerade %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]any{"public": "br10", "anon": "br11", "nosix": nil, "onlysix": "br12"} {
		if got := opt(name, "bridge.name"); got != want {
			t.Errorf("%s bridge %v, want %v", name, got, want)
		}
	}
}

// TestRenderStaticIPSpec checks what spec/docker_static_ip_addhost_spec.rb asserts.
func TestRenderStaticIPSpec(t *testing.T) {
	doc := renderSpec(t, "static_ip_addhost")
	ipam := func(name string) any {
		return at(doc, "serverone", "containers", "tra-app-"+name, "NetworkingConfig", "EndpointsConfig", "tra-everything", "IPAMConfig")
	}
	equalJSON(t, "lb_ipv4_stack IPAM", ipam("lb_ipv4_stack"), `{"IPv4Address":"172.100.100.42"}`)
	equalJSON(t, "lb_ipv6_stack IPAM", ipam("lb_ipv6_stack"), `{"IPv6Address":"fd00:100:10aa::43"}`)
	equalJSON(t, "lb_dual_stack IPAM", ipam("lb_dual_stack"), `{"IPv4Address":"172.100.100.41","IPv6Address":"fd00:100:10aa::41"}`)
	hosts := strs(at(doc, "serverone", "containers", "tra-app-daemon_with_additional_hosts", "HostConfig", "ExtraHosts"))
	slices.Sort(hosts)
	if want := []string{"example.com:172.100.100.42", "example.su:172.100.100.41", "example.su:fd00:100:10aa::41"}; !slices.Equal(hosts, want) {
		t.Errorf("extra hosts %q, want %q", hosts, want)
	}
}

// TestRenderTraefikSpec checks what spec/docker_traefik_spec.rb asserts, and that labels are not needed.
func TestRenderTraefikSpec(t *testing.T) {
	doc := renderSpec(t, "traefik")
	labels := func(name string) map[string]any {
		return userLabels(at(doc, "serverone", "containers", "tra-app-"+name, "Labels"))
	}
	equalJSON(t, "nginx_single_host labels", labels("nginx_single_host"), `{"lb.net":"public",
		"traefik.http.routers.tra-app-nginx_single_host.rule":"Host(`+"`example.com`"+`)",
		"traefik.http.services.tra-app-nginx_single_host.loadbalancer.server.port":"8181",
		"traefik.http.routers.tra-app-nginx_single_host.entrypoints":"websecure",
		"traefik.http.routers.tra-app-nginx_single_host.tls.certresolver":"lec"}`)
	equalJSON(t, "nginx_multi_host labels", labels("nginx_multi_host"), `{"lb.net":"other",
		"traefik.http.routers.tra-app-nginx_multi_host.rule":"Host(`+"`my.style`,`www.my.style`"+`)",
		"traefik.http.services.tra-app-nginx_multi_host.loadbalancer.server.port":"8080",
		"traefik.http.routers.tra-app-nginx_multi_host.entrypoints":"websecure",
		"traefik.http.routers.tra-app-nginx_multi_host.tls.certresolver":"lec"}`)
	equalJSON(t, "nginx_no_tls labels", labels("nginx_no_tls"), `{"lb.net":"other",
		"traefik.http.routers.tra-app-nginx_no_tls.rule":"Host(`+"`no.ssl`,`www.no.ssl`"+`)",
		"traefik.http.services.tra-app-nginx_no_tls.loadbalancer.server.port":"8282"}`)
	equalJSON(t, "nginx_no_labels labels", labels("nginx_no_labels"), `{
		"traefik.http.routers.tra-app-nginx_no_labels.rule":"Host(`+"`bare.example`"+`)",
		"traefik.http.services.tra-app-nginx_no_labels.loadbalancer.server.port":"8383"}`)
}

// TestRenderHostnameAndCapabilitySpecs checks what spec/docker_addhost_spec.rb and docker_capapp_spec.rb assert.
func TestRenderHostnameAndCapabilitySpecs(t *testing.T) {
	doc := renderSpec(t, "addhost")
	if got := at(doc, "serverone", "containers", "tra-app-service_with_custom_hostname", "Hostname"); got != "special_snowflake" {
		t.Errorf("hostname %v", got)
	}
	doc = renderSpec(t, "capapp")
	caps := func(name string) any {
		return at(doc, "serverone", "containers", "tra-app-"+name, "HostConfig", "CapAdd")
	}
	// As the Docker client sends them: with the CAP_ prefix (the engine reads both).
	equalJSON(t, "service_with_special CapAdd", caps("service_with_special"), `["CAP_NET_ADMIN"]`)
	equalJSON(t, "service_with_multi_special CapAdd", caps("service_with_multi_special"), `["CAP_NET_ADMIN","CAP_SYS_ADMIN"]`)
	if got := caps("service_without_special"); got != nil {
		t.Errorf("service_without_special CapAdd %v", got)
	}
}

// TestRenderHidesSecrets renders a file with a database password: shown as (secret) unless --show-secrets.
func TestRenderHidesSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "settings.yml")
	data := "docker:\n  web1:\n    applications:\n      ttrss:\n        image: ttrss:1\n        db: [postgres]\n" +
		"        env: {db_pass: _postgres^password, db_user: ttrss}\n"
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"render", "-c", file, "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("render: exit %d\n%s", code, errOut.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	equalJSON(t, "env", at(doc, "web1", "containers", "bee2-app-ttrss", "Env"), `["DB_PASS=(secret)","DB_USER=ttrss"]`)
	pw, err := os.ReadFile(filepath.Join(dir, "secrets", "database", "postgres", "ttrss"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out.Bytes(), bytes.TrimSpace(pw)) || bytes.Contains(errOut.Bytes(), bytes.TrimSpace(pw)) {
		t.Errorf("the password shows in render's output")
	}
	out.Reset()
	if code := run(t.Context(), []string{"render", "-c", file, "--json", "--show-secrets"}, &out, &errOut); code != exitOK {
		t.Fatalf("render --show-secrets: exit %d\n%s", code, errOut.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("DB_PASS="+string(bytes.TrimSpace(pw)))) {
		t.Errorf("--show-secrets does not show the password:\n%s", out.String())
	}
}
