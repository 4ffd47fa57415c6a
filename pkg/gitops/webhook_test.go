package gitops

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

var (
	webhookTestSecret = []byte("hook-secret-5f2c9a")
	webhookTestBody   = []byte(`{"ref":"refs/heads/main","marker":"payload-marker-7d1e"}`)
)

// webhookHex is the signature of Gitea, Forgejo and Gogs: the bare hex HMAC.
func webhookHex(secret, body []byte) string {
	return strings.TrimPrefix(SignGitHub(secret, body), "sha256=")
}

// webhookProviders are the headers a forge signs with; malformed are values no secret can make right.
var webhookProviders = []struct {
	name, header string
	sign         func(secret, body []byte) string
	malformed    []string
}{
	{"github", "X-Hub-Signature-256", SignGitHub, []string{
		"", "sha256=", "sha256=not-hex", webhookHex(webhookTestSecret, webhookTestBody), // no prefix
		"sha1=" + webhookHex(webhookTestSecret, webhookTestBody), "sha256=abcd", "sha256=" + strings.Repeat("0", 66),
	}},
	{"gitea", "X-Gitea-Signature", webhookHex, []string{"", "not-hex", "abcd", SignGitHub(webhookTestSecret, webhookTestBody)}},
	{"forgejo", "X-Forgejo-Signature", webhookHex, []string{"", "zz", strings.Repeat("0", 63)}},
	{"gogs", "X-Gogs-Signature", webhookHex, []string{"", "0x" + strings.Repeat("0", 64)}},
	{"gitlab", "X-Gitlab-Token", func(secret, _ []byte) string { return string(secret) }, []string{
		"", string(webhookTestSecret) + "\n", string(webhookTestSecret[:len(webhookTestSecret)-1]),
	}},
	{"generic", "X-Bee2d-Signature-256", SignGitHub, []string{"", "sha256=xyz", webhookHex(webhookTestSecret, webhookTestBody)}},
}

type webhookCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *webhookCounts) Webhook(result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[result]++
}

func (c *webhookCounts) get(result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[result]
}

type webhookRig struct {
	h        *Webhook
	triggers atomic.Int32
	logs     *observer.ObservedLogs
	counts   *webhookCounts

	mu  sync.Mutex
	now time.Time
}

func newWebhookRig(t *testing.T) *webhookRig {
	t.Helper()
	g := &webhookRig{counts: &webhookCounts{n: map[string]int{}}, now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	h, err := NewWebhook(webhookTestSecret, func() { g.triggers.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	h.Log, h.Metrics, h.Now, g.logs = zap.New(core), g.counts, g.clock, logs
	g.h = h
	return g
}

func (g *webhookRig) clock() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now
}

func (g *webhookRig) advance(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now = g.now.Add(d)
}

// post sends body with the headers given as name, value pairs; a name may repeat.
func (g *webhookRig) post(body []byte, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/hooks/git", bytes.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	g.h.ServeHTTP(w, r)
	return w
}

// expect checks the answer, how often Trigger ran in all, and that the result was counted once more.
func (g *webhookRig) expect(t *testing.T, w *httptest.ResponseRecorder, status int, triggers int32) {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d (%q), want %d", w.Code, w.Body.String(), status)
	}
	if n := g.triggers.Load(); n != triggers {
		t.Errorf("Trigger called %d times, want %d", n, triggers)
	}
	result := map[int]string{
		http.StatusAccepted: WebhookAccepted, http.StatusUnauthorized: WebhookUnauthorized,
		http.StatusRequestEntityTooLarge: WebhookTooLarge, http.StatusMethodNotAllowed: WebhookBadRequest,
	}[status]
	total := 0
	for _, r := range WebhookResults() {
		total += g.counts.get(r)
	}
	if total != 1 || g.counts.get(result) != 1 {
		t.Errorf("counted %v, want one %s", g.counts.n, result)
	}
}

func TestWebhookProviders(t *testing.T) {
	for _, p := range webhookProviders {
		t.Run(p.name, func(t *testing.T) {
			t.Run("good", func(t *testing.T) {
				g := newWebhookRig(t)
				w := g.post(webhookTestBody, p.header, p.sign(webhookTestSecret, webhookTestBody))
				g.expect(t, w, http.StatusAccepted, 1)
				if got := w.Body.String(); got != "fetch queued\n" {
					t.Errorf("body %q", got)
				}
			})
			t.Run("wrong secret", func(t *testing.T) {
				g := newWebhookRig(t)
				g.expect(t, g.post(webhookTestBody, p.header, p.sign([]byte("not-the-secret"), webhookTestBody)), http.StatusUnauthorized, 0)
			})
			t.Run("missing header", func(t *testing.T) {
				g := newWebhookRig(t)
				// The signature sits under a header bee2d does not read.
				g.expect(t, g.post(webhookTestBody, "X-Signature", p.sign(webhookTestSecret, webhookTestBody)), http.StatusUnauthorized, 0)
			})
			t.Run("repeated header", func(t *testing.T) {
				g := newWebhookRig(t)
				good := p.sign(webhookTestSecret, webhookTestBody)
				g.expect(t, g.post(webhookTestBody, p.header, good, p.header, good), http.StatusUnauthorized, 0)
			})
			for i, bad := range p.malformed {
				t.Run(fmt.Sprintf("malformed %d", i), func(t *testing.T) {
					g := newWebhookRig(t)
					g.expect(t, g.post(webhookTestBody, p.header, bad), http.StatusUnauthorized, 0)
				})
			}
			if p.name == "gitlab" {
				return
			}
			t.Run("other body", func(t *testing.T) {
				g := newWebhookRig(t)
				sig := p.sign(webhookTestSecret, webhookTestBody)
				g.expect(t, g.post(append(webhookTestBody, ' '), p.header, sig), http.StatusUnauthorized, 0)
			})
			t.Run("upper-case hex", func(t *testing.T) {
				g := newWebhookRig(t)
				sig := p.sign(webhookTestSecret, webhookTestBody)
				pre, hexed, _ := strings.Cut(sig, "=")
				if hexed == "" {
					sig = strings.ToUpper(pre)
				} else {
					sig = pre + "=" + strings.ToUpper(hexed)
				}
				g.expect(t, g.post(webhookTestBody, p.header, sig), http.StatusAccepted, 1)
			})
		})
	}
}

func TestWebhookNoHeader(t *testing.T) {
	g := newWebhookRig(t)
	g.expect(t, g.post(webhookTestBody), http.StatusUnauthorized, 0)
	// X-Hub-Signature is SHA-1, which is not accepted, so it does not count as a signature.
	sha1 := "sha1=" + strings.Repeat("0", 40)
	g = newWebhookRig(t)
	g.expect(t, g.post(webhookTestBody, "X-Hub-Signature", sha1), http.StatusUnauthorized, 0)
}

func TestWebhookEveryHeaderMustHold(t *testing.T) {
	good := func(header string) string {
		for _, p := range webhookProviders {
			if p.header == header {
				return p.sign(webhookTestSecret, webhookTestBody)
			}
		}
		panic(header)
	}
	wrong := "sha256=" + webhookHex([]byte("not-the-secret"), webhookTestBody)
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
		failed  string // the header the log names
	}{
		{"github right, gitea wrong", []string{
			"X-Hub-Signature-256", good("X-Hub-Signature-256"),
			"X-Gitea-Signature", webhookHex([]byte("not-the-secret"), webhookTestBody),
		}, http.StatusUnauthorized, "X-Gitea-Signature"},
		{"github wrong, gitea right", []string{
			"X-Hub-Signature-256", wrong, "X-Gitea-Signature", good("X-Gitea-Signature"),
		}, http.StatusUnauthorized, "X-Hub-Signature-256"},
		{"github right, gitlab wrong", []string{
			"X-Hub-Signature-256", good("X-Hub-Signature-256"), "X-Gitlab-Token", "guess",
		}, http.StatusUnauthorized, "X-Gitlab-Token"},
		{"gitlab right, generic malformed", []string{
			"X-Gitlab-Token", good("X-Gitlab-Token"), "X-Bee2d-Signature-256", "sha256=",
		}, http.StatusUnauthorized, "X-Bee2d-Signature-256"},
		// What Forgejo sends: the same signature under four names.
		{"forgejo's four", []string{
			"X-Hub-Signature-256", good("X-Hub-Signature-256"), "X-Gitea-Signature", good("X-Gitea-Signature"),
			"X-Forgejo-Signature", good("X-Forgejo-Signature"), "X-Gogs-Signature", good("X-Gogs-Signature"),
		}, http.StatusAccepted, ""},
		{"all six", []string{
			"X-Hub-Signature-256", good("X-Hub-Signature-256"), "X-Gitea-Signature", good("X-Gitea-Signature"),
			"X-Forgejo-Signature", good("X-Forgejo-Signature"), "X-Gogs-Signature", good("X-Gogs-Signature"),
			"X-Gitlab-Token", good("X-Gitlab-Token"), "X-Bee2d-Signature-256", good("X-Bee2d-Signature-256"),
		}, http.StatusAccepted, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newWebhookRig(t)
			want := int32(0)
			if tc.status == http.StatusAccepted {
				want = 1
			}
			g.expect(t, g.post(webhookTestBody, tc.headers...), tc.status, want)
			if tc.failed == "" {
				return
			}
			refused := g.logs.FilterMessage("webhook request refused").All()
			if len(refused) != 1 || refused[0].ContextMap()["header"] != tc.failed {
				t.Errorf("logged %v, want one refusal naming %s", refused, tc.failed)
			}
		})
	}
}

func TestWebhookMethod(t *testing.T) {
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		t.Run(m, func(t *testing.T) {
			g := newWebhookRig(t)
			r := httptest.NewRequest(m, "/hooks/git", bytes.NewReader(webhookTestBody))
			r.Header.Set("X-Hub-Signature-256", SignGitHub(webhookTestSecret, webhookTestBody))
			w := httptest.NewRecorder()
			g.h.ServeHTTP(w, r)
			g.expect(t, w, http.StatusMethodNotAllowed, 0)
			if a := w.Header().Get("Allow"); a != "POST" {
				t.Errorf("Allow: %q", a)
			}
		})
	}
}

// webhookCounter counts what is read from it, to show the handler stops at the limit.
type webhookCounter struct {
	r io.Reader
	n int64
}

func (c *webhookCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestWebhookTooLarge(t *testing.T) {
	const limit = 1000
	big := bytes.Repeat([]byte("x"), 5000)
	for _, tc := range []struct {
		name   string
		body   []byte
		length bool // whether Content-Length is declared
		status int
	}{
		{"declared over", big, true, http.StatusRequestEntityTooLarge},
		{"streamed over", big, false, http.StatusRequestEntityTooLarge},
		{"streamed one over", big[:limit+1], false, http.StatusRequestEntityTooLarge},
		{"declared at the limit", big[:limit], true, http.StatusAccepted},
		{"streamed at the limit", big[:limit], false, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newWebhookRig(t)
			g.h.MaxBody = limit
			body := &webhookCounter{r: bytes.NewReader(tc.body)}
			r := httptest.NewRequest(http.MethodPost, "/hooks/git", body)
			r.ContentLength = -1
			if tc.length {
				r.ContentLength = int64(len(tc.body))
			}
			r.Header.Set("X-Hub-Signature-256", SignGitHub(webhookTestSecret, tc.body))
			w := httptest.NewRecorder()
			g.h.ServeHTTP(w, r)
			want := int32(0)
			if tc.status == http.StatusAccepted {
				want = 1
			}
			g.expect(t, w, tc.status, want)
			if body.n > limit+1 {
				t.Errorf("read %d bytes of the body, limit %d", body.n, limit)
			}
		})
	}
}

func TestWebhookTooLargeByDefault(t *testing.T) {
	// A Webhook built without NewWebhook still has a limit.
	h := &Webhook{Secret: webhookTestSecret, Trigger: func() { t.Error("triggered") }}
	r := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader("{}"))
	r.ContentLength = DefaultWebhookMaxBody + 1
	r.Header.Set("X-Gitlab-Token", string(webhookTestSecret))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d", w.Code)
	}
}

func TestWebhookStreamsBody(t *testing.T) {
	const size = 20 << 20
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	g := newWebhookRig(t)
	r := httptest.NewRequest(http.MethodPost, "/hooks/git", bytes.NewReader(body))
	r.Header.Set("X-Hub-Signature-256", SignGitHub(webhookTestSecret, body))
	w := httptest.NewRecorder()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g.h.ServeHTTP(w, r)
	runtime.ReadMemStats(&after)

	g.expect(t, w, http.StatusAccepted, 1)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc >= 4<<20 {
		t.Errorf("allocated %d bytes for a %d-byte body", alloc, size)
	}
}

func TestWebhookLogsNoSecrets(t *testing.T) {
	g := newWebhookRig(t)
	g.h.MaxBody = int64(len(webhookTestBody)) + 10
	// Every refusal is logged, so that each request's entry can be searched.
	g.h.Now = func() time.Time { g.advance(time.Minute); return g.clock() }

	wrongSecret := []byte("wrong-secret-0b7a")
	var presented []string
	send := func(body []byte, headers ...string) {
		for i := 1; i < len(headers); i += 2 {
			presented = append(presented, headers[i])
		}
		g.post(body, headers...)
	}
	for _, p := range webhookProviders {
		send(webhookTestBody, p.header, p.sign(webhookTestSecret, webhookTestBody))
		send(webhookTestBody, p.header, p.sign(wrongSecret, webhookTestBody))
		send(webhookTestBody, "X-Hub-Signature-256", SignGitHub(webhookTestSecret, webhookTestBody), p.header, p.sign(wrongSecret, webhookTestBody))
		for _, bad := range p.malformed {
			send(webhookTestBody, p.header, bad)
		}
	}
	long := append(bytes.Clone(webhookTestBody), strings.Repeat(" ", 20)...)
	send(long, "X-Hub-Signature-256", SignGitHub(webhookTestSecret, long))
	send(long, "X-Gitlab-Token", string(webhookTestSecret))
	send(webhookTestBody)

	secrets := []string{string(webhookTestSecret), hex.EncodeToString(webhookTestSecret), string(wrongSecret), "payload-marker-7d1e"}
	for _, v := range presented {
		// A value too short to be told apart from an ordinary word ("zz", "abcd") proves nothing.
		for _, v := range []string{v, strings.TrimPrefix(v, "sha256=")} {
			if len(v) > 8 {
				secrets = append(secrets, v)
			}
		}
	}
	refusals := g.counts.get(WebhookUnauthorized) + g.counts.get(WebhookTooLarge)
	if n := g.logs.FilterMessage("webhook request refused").Len(); n != refusals || refusals < 20 {
		t.Fatalf("%d refusals logged of %d", n, refusals)
	}
	for _, e := range g.logs.All() {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log entry %q holds %q", line, s)
			}
		}
		if e.Message == "webhook request refused" {
			if e.Level != zapcore.WarnLevel || e.ContextMap()["remote"] != "192.0.2.1:1234" {
				t.Errorf("refusal logged as %v %v", e.Level, e.ContextMap())
			}
		}
	}
}

func TestWebhookLogRateLimit(t *testing.T) {
	g := newWebhookRig(t)
	refused := func() []observer.LoggedEntry { return g.logs.FilterMessage("webhook request refused").All() }
	for range 5 {
		g.post(webhookTestBody, "X-Gitlab-Token", "guess")
		g.advance(time.Second)
	}
	if n := len(refused()); n != 1 {
		t.Fatalf("%d refusals logged within 5 s, want 1", n)
	}
	if _, ok := refused()[0].ContextMap()["suppressed"]; ok {
		t.Errorf("first refusal has a suppressed count: %v", refused()[0].ContextMap())
	}
	g.advance(4 * time.Second) // 9 s since the first
	g.post(webhookTestBody, "X-Gitlab-Token", "guess")
	g.advance(time.Second) // 10 s
	g.post(webhookTestBody, "X-Gitlab-Token", "guess")
	logged := refused()
	if len(logged) != 2 || logged[1].ContextMap()["suppressed"] != int64(5) {
		t.Fatalf("after 10 s: %v, want a second entry with 5 suppressed", logged)
	}
	g.advance(time.Minute)
	g.post(webhookTestBody)
	logged = refused()
	if len(logged) != 3 {
		t.Fatalf("after a minute: %d entries, want 3", len(logged))
	}
	if _, ok := logged[2].ContextMap()["suppressed"]; ok {
		t.Errorf("nothing was suppressed: %v", logged[2].ContextMap())
	}
	if n := g.counts.get(WebhookUnauthorized); n != 8 {
		t.Errorf("counted %d unauthorized, want all 8", n)
	}
}

func TestWebhookConcurrent(t *testing.T) {
	g := newWebhookRig(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if i%2 == 0 {
				g.post(webhookTestBody, "X-Hub-Signature-256", SignGitHub(webhookTestSecret, webhookTestBody))
			} else {
				g.post(webhookTestBody, "X-Hub-Signature-256", SignGitHub([]byte("x"), webhookTestBody))
			}
		})
	}
	wg.Wait()
	if n := g.triggers.Load(); n != 8 {
		t.Errorf("%d triggers, want 8", n)
	}
	if a, u := g.counts.get(WebhookAccepted), g.counts.get(WebhookUnauthorized); a != 8 || u != 8 {
		t.Errorf("accepted %d, unauthorized %d", a, u)
	}
}

func TestNewWebhook(t *testing.T) {
	if _, err := NewWebhook(nil, func() {}); err == nil {
		t.Error("nil secret accepted")
	}
	if _, err := NewWebhook([]byte{}, func() {}); err == nil {
		t.Error("empty secret accepted")
	}
	if _, err := NewWebhook([]byte("s"), nil); err == nil {
		t.Error("nil trigger accepted")
	}
	secret := []byte("secret")
	h, err := NewWebhook(secret, func() {})
	if err != nil {
		t.Fatal(err)
	}
	secret[0] = 'X'
	if string(h.Secret) != "secret" || h.MaxBody != DefaultWebhookMaxBody {
		t.Errorf("got secret %q, MaxBody %d", h.Secret, h.MaxBody)
	}
}

func TestWebhookWithoutLogOrMetrics(t *testing.T) {
	var n int
	h := &Webhook{Secret: webhookTestSecret, Trigger: func() { n++ }}
	for _, sig := range []string{SignGitHub(webhookTestSecret, webhookTestBody), "sha256=00"} {
		r := httptest.NewRequest(http.MethodPost, "/hooks/git", bytes.NewReader(webhookTestBody))
		r.Header.Set("X-Hub-Signature-256", sig)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if n != 1 {
		t.Errorf("%d triggers, want 1", n)
	}
}

func TestWebhookEmptySecret(t *testing.T) {
	// Anyone can sign with an empty key, so a Webhook without a secret accepts nothing.
	h := &Webhook{Trigger: func() { t.Error("triggered") }}
	for _, hd := range [][2]string{
		{"X-Hub-Signature-256", SignGitHub(nil, webhookTestBody)},
		{"X-Gitlab-Token", ""},
	} {
		r := httptest.NewRequest(http.MethodPost, "/hooks/git", bytes.NewReader(webhookTestBody))
		r.Header.Set(hd[0], hd[1])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d", hd[0], w.Code)
		}
	}
}

// FuzzWebhookSignature checks that a request is accepted exactly when its one header holds the right value.
func FuzzWebhookSignature(f *testing.F) {
	for i, p := range webhookProviders {
		f.Add(uint8(i), p.sign(webhookTestSecret, webhookTestBody), webhookTestBody)
		for _, bad := range p.malformed {
			f.Add(uint8(i), bad, webhookTestBody)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, value string, body []byte) {
		p := webhookProviders[int(which)%len(webhookProviders)]
		var triggered bool
		h := &Webhook{Secret: webhookTestSecret, Trigger: func() { triggered = true }}
		r := httptest.NewRequest(http.MethodPost, "/hooks/git", bytes.NewReader(body))
		r.Header[p.header] = []string{value} // as sent, not canonicalised
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		right := p.sign(webhookTestSecret, body)
		// Hex digits may come in either case; the prefix may not.
		switch {
		case p.header == "X-Gitlab-Token":
		case strings.HasPrefix(right, "sha256="):
			if rest, ok := strings.CutPrefix(value, "sha256="); ok {
				value = "sha256=" + strings.ToLower(rest)
			}
		default:
			value = strings.ToLower(value)
		}
		switch want := value == right; {
		case w.Code != http.StatusAccepted && w.Code != http.StatusUnauthorized:
			t.Fatalf("status %d", w.Code)
		case want != (w.Code == http.StatusAccepted) || triggered != want:
			t.Fatalf("%s: %q: status %d, triggered %v; right value %q", p.header, value, w.Code, triggered, right)
		}
	})
}

func TestReadWebhookSecret(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		secret  string
		warning string // a part of the warning; empty for none
		err     string // a part of the error
	}{
		{name: "newline trimmed", content: "s3cret\n", mode: 0o600, secret: "s3cret"},
		{name: "crlf trimmed", content: "s3cret\r\n", mode: 0o600, secret: "s3cret"},
		{name: "no newline", content: "s3cret", mode: 0o600, secret: "s3cret"},
		{name: "one newline only", content: "s3cret\n\n", mode: 0o600, secret: "s3cret\n"},
		{name: "spaces kept", content: " s3cret \n", mode: 0o600, secret: " s3cret "},
		{name: "at the limit", content: strings.Repeat("s", MaxWebhookSecretFile), mode: 0o400, secret: strings.Repeat("s", MaxWebhookSecretFile)},
		{name: "0644", content: "s3cret\n", mode: 0o644, secret: "s3cret", warning: "readable by its group and others (mode 0644); chmod 600"},
		{name: "0640", content: "s3cret\n", mode: 0o640, secret: "s3cret", warning: "readable by its group (mode 0640)"},
		{name: "0604", content: "s3cret\n", mode: 0o604, secret: "s3cret", warning: "readable by others (mode 0604)"},
		{name: "0700", content: "s3cret\n", mode: 0o700, secret: "s3cret"},
		{name: "empty", content: "", mode: 0o600, err: "empty"},
		{name: "only a newline", content: "\n", mode: 0o600, err: "empty"},
		{name: "too big", content: strings.Repeat("s", MaxWebhookSecretFile+1), mode: 0o600, err: "larger than 4096 bytes"},
		{name: "too big with a newline", content: strings.Repeat("s", MaxWebhookSecretFile) + "\n", mode: 0o600, err: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "webhook-secret")
			if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, tc.mode); err != nil {
				t.Fatal(err)
			}
			secret, warning, err := ReadWebhookSecret(file)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), file) {
					t.Fatalf("error %v, want one naming %s and saying %q", err, file, tc.err)
				}
				if secret != nil || warning != "" {
					t.Errorf("refused, yet returned %q, %q", secret, warning)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(secret) != tc.secret {
				t.Errorf("secret %q, want %q", secret, tc.secret)
			}
			switch {
			case tc.warning == "" && warning != "":
				t.Errorf("unexpected warning %q", warning)
			case tc.warning != "" && (!strings.Contains(warning, tc.warning) || !strings.Contains(warning, file)):
				t.Errorf("warning %q, want one naming %s and saying %q", warning, file, tc.warning)
			}
		})
	}
}

func TestReadWebhookSecretNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.WriteFile(filepath.Join(dir, "target"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, err string }{
		{"directory", dir, "not a regular file (a directory)"},
		// Opening a FIFO for reading waits for a writer: the test would hang if it were opened.
		{"fifo", fifo, "not a regular file (a named pipe)"},
		{"missing", filepath.Join(dir, "missing"), "no such file or directory"},
		{"dangling link", filepath.Join(dir, "dangling"), "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "dangling link" {
				if err := os.Symlink("nowhere", tc.file); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := ReadWebhookSecret(tc.file)
			if err == nil || err.Error() != "webhook secret file "+tc.file+": "+tc.err {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
	// A link to a regular file is how container platforms mount secrets.
	if secret, _, err := ReadWebhookSecret(link); err != nil || string(secret) != "s3cret" {
		t.Errorf("through a link: %q, %v", secret, err)
	}
}

func TestSignGitHub(t *testing.T) {
	// RFC 4231 test case 2.
	got := SignGitHub([]byte("Jefe"), []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
