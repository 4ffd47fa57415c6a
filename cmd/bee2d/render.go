package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// secretShown replaces a secret env value in render's output.
const secretShown = "(secret)"

// cmdRender prints the desired state of each server as the Engine API requests bee2d would make: its networks
// as network-create bodies and its containers (applications and jobs) as container-create bodies. No engine
// is contacted; build directories are hashed and git branches resolved as apply does.
func cmdRender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var asJSON, showSecrets bool
	fs := newFlags("render", "render -c settings.yml [--server S] --json [--show-secrets]", &c, true, stderr)
	fs.BoolVar(&asJSON, "json", false, "print JSON (the one format there is; the flag says so in scripts)")
	fs.BoolVar(&showSecrets, "show-secrets", false, "print secret env values (passwords, secret files) instead of "+secretShown)
	if err := parse(fs, &c, args); err != nil {
		return err
	}
	s, err := load(c, stderr)
	if err != nil {
		return err
	}
	servers, err := selectServers(s, c.server)
	if err != nil {
		return err
	}
	out, err := render(s, servers, reconcile.Sources{Digest: dockerx.ContextDigest, Head: gitx.Heads(ctx)}, showSecrets)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// selectServers is the server named, or every server in file order.
func selectServers(s *config.Settings, only string) ([]string, error) {
	if only != "" {
		if s.Server(only) == nil {
			return nil, fmt.Errorf("no server %q in %s", only, s.File)
		}
		return []string{only}, nil
	}
	var out []string
	for _, srv := range s.Servers {
		out = append(out, srv.Name)
	}
	return out, nil
}

// render is {"<server>": {"networks": {"<name>": <create body>}, "containers": {"<name>": <create body>}}},
// indented, keys sorted, secret env values hidden unless showSecrets.
func render(s *config.Settings, servers []string, src reconcile.Sources, showSecrets bool) ([]byte, error) {
	type serverOut struct {
		Networks   map[string]json.RawMessage `json:"networks"`
		Containers map[string]json.RawMessage `json:"containers"`
	}
	all := map[string]serverOut{}
	for _, name := range servers {
		d, err := reconcile.DesireFrom(s, name, src)
		if err != nil {
			return nil, err
		}
		so := serverOut{Networks: map[string]json.RawMessage{}, Containers: map[string]json.RawMessage{}}
		for _, n := range d.Networks {
			body, err := dockerx.NetworkCreateBody(n)
			if err != nil {
				return nil, fmt.Errorf("server %s: network %s: %w", name, n.Name, err)
			}
			so.Networks[n.Name] = body
		}
		for _, c := range append(d.Containers, d.Jobs...) {
			if c.SourceErr != nil {
				return nil, fmt.Errorf("server %s: %s %s: %w", name, c.Kind, c.Service, c.SourceErr)
			}
			spec := c.ContainerSpec
			if !showSecrets {
				spec.Env = hideSecrets(s, name, c, spec.Env)
			}
			body, err := dockerx.CreateBody(spec)
			if err == nil {
				body, err = withMoreNetworks(body, spec)
			}
			if err != nil {
				return nil, fmt.Errorf("server %s: container %s: %w", name, c.Name, err)
			}
			so.Containers[c.Name] = body
		}
		all[name] = so
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(all); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// hideSecrets replaces the values of the container's secret env keys.
func hideSecrets(s *config.Settings, server string, c *reconcile.Container, env []string) []string {
	svc := s.App(server, c.Service)
	if c.Kind == config.KindJob {
		svc = s.JobOn(server, c.Service)
	}
	if svc == nil {
		return env
	}
	secret := config.SecretKeys(svc)
	out := make([]string, len(env))
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if secret[k] {
			kv = k + "=" + secretShown
		}
		out[i] = kv
	}
	return out
}

// withMoreNetworks adds the networks bee2d connects a container to after creating it (before it starts) to
// the create body's EndpointsConfig, beside the primary one, so that render shows every network a container
// is on. (Engines from API 1.44 take them so in the create request itself.)
func withMoreNetworks(body []byte, spec dockerx.ContainerSpec) ([]byte, error) {
	if len(spec.MoreNetworks) == 0 {
		return body, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	var nc struct {
		EndpointsConfig map[string]json.RawMessage
	}
	if raw, ok := top["NetworkingConfig"]; ok {
		if err := json.Unmarshal(raw, &nc); err != nil {
			return nil, err
		}
	}
	if nc.EndpointsConfig == nil {
		nc.EndpointsConfig = map[string]json.RawMessage{}
	}
	for _, n := range spec.MoreNetworks {
		ep, err := marshalPlain(struct{ Aliases []string }{spec.Aliases})
		if err != nil {
			return nil, err
		}
		nc.EndpointsConfig[n] = ep
	}
	raw, err := marshalPlain(nc)
	if err != nil {
		return nil, err
	}
	top["NetworkingConfig"] = raw
	return marshalPlain(top)
}

// marshalPlain is json.Marshal without escaping &, < and >, which env values and labels often hold.
func marshalPlain(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
