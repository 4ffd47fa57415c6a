package labels

import "testing"

func TestOwnership(t *testing.T) {
	own := ForServer("bee2", "web1")
	app := ForServer("bee2", "web1")
	app[SpecHash] = "abc"
	for _, tc := range []struct {
		name             string
		l                map[string]string
		onServer, manage bool
	}{
		{"network or volume", own, true, false},
		{"application", app, true, true},
		{"other server", ForServer("bee2", "web2"), false, false},
		{"other prefix", ForServer("b2", "web1"), false, false},
		{"not bee2d's", map[string]string{Owner: "someone", Prefix: "bee2", Server: "web1", SpecHash: "abc"}, false, false},
		{"no labels", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := OnServer(tc.l, "bee2", "web1"); got != tc.onServer {
				t.Errorf("OnServer = %v, want %v", got, tc.onServer)
			}
			if got := Managed(tc.l, "bee2", "web1"); got != tc.manage {
				t.Errorf("Managed = %v, want %v", got, tc.manage)
			}
		})
	}
}
