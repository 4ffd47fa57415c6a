package gitops

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// The results a webhook request is counted under.
const (
	WebhookAccepted     = "accepted"
	WebhookUnauthorized = "unauthorized"
	WebhookTooLarge     = "too_large"
	WebhookBadRequest   = "bad_request"
)

// WebhookResults lists every result a Webhook reports, so that the metrics can start each at zero.
func WebhookResults() []string {
	return []string{WebhookAccepted, WebhookUnauthorized, WebhookTooLarge, WebhookBadRequest}
}

// WebhookMetrics is what the webhook reports; the daemon's metrics implement it. Result is one of the
// Webhook* constants.
type WebhookMetrics interface{ Webhook(result string) }

// DefaultWebhookMaxBody is the largest body a Webhook reads unless told otherwise: GitHub's own cap on a
// payload, so no forge's push is refused for its size.
const DefaultWebhookMaxBody = 25 << 20

// MaxWebhookSecretFile bounds the webhook secret file; a secret is a line, not a document.
const MaxWebhookSecretFile = 4 << 10

// webhookLogEvery is how often a refused request is logged at most: a scanner knocking every second must
// not fill the log.
const webhookLogEvery = 10 * time.Second

// Webhook is the handler of POST /hooks/git: a forge calls it on a push so that the settings are fetched at
// once instead of at the next poll. A request carries no data bee2d uses: its body is hashed to check the
// signature and never parsed, so the most a caller with the secret can do is ask for a fetch now.
//
// A request is authenticated by every signature header it carries, and must carry at least one:
//
//	X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>   GitHub (Gitea and Forgejo send it too)
//	X-Gitea-Signature: <hex HMAC-SHA256>                        Gitea
//	X-Forgejo-Signature: <hex HMAC-SHA256>                      Forgejo
//	X-Gogs-Signature: <hex HMAC-SHA256>                         Gogs
//	X-Gitlab-Token: <the secret itself>                         GitLab
//	X-Bee2d-Signature-256: sha256=<hex HMAC-SHA256>             anything else (curl, CI jobs)
//
// A wrong header is not outvoted by a right one: a request that presents a signature it cannot back is not
// what the forge sent. SHA-1 signatures (X-Hub-Signature) are ignored.
//
// ServeHTTP does not bound the time a slow client takes to send its body; the daemon's http.Server sets
// ReadTimeout for that.
type Webhook struct {
	// Secret is the shared secret; never empty (NewWebhook refuses, and ServeHTTP refuses every request
	// when it is).
	Secret []byte
	// Trigger asks for a fetch now. It must not block: the follower coalesces requests.
	Trigger func()
	// Log may be nil.
	Log *zap.Logger
	// Metrics may be nil.
	Metrics WebhookMetrics
	// MaxBody is the largest body accepted, in bytes; DefaultWebhookMaxBody when zero or less.
	MaxBody int64
	// Now may be nil: time.Now. It paces the logs of refused requests.
	Now func() time.Time

	logMu      sync.Mutex
	lastLog    time.Time // when a webhookRefusal was last logged; zero before the first
	suppressed int       // webhookRefusals not logged since then
}

// NewWebhook returns a Webhook with the default body limit. Log and Metrics may be set on the result.
func NewWebhook(secret []byte, trigger func()) (*Webhook, error) {
	if len(secret) == 0 {
		return nil, errors.New("webhook: empty secret")
	}
	if trigger == nil {
		return nil, errors.New("webhook: no trigger")
	}
	return &Webhook{Secret: bytes.Clone(secret), Trigger: trigger, MaxBody: DefaultWebhookMaxBody}, nil
}

// SignGitHub returns the X-Hub-Signature-256 value of body, "sha256=" and the hex HMAC-SHA256; the
// X-Bee2d-Signature-256 header takes the same value.
func SignGitHub(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// webhookMACHeader is a header that carries an HMAC-SHA256 of the body: prefix, then hex.
type webhookMACHeader struct{ name, prefix string }

var webhookMACHeaders = []webhookMACHeader{
	{"X-Hub-Signature-256", "sha256="},
	{"X-Gitea-Signature", ""},
	{"X-Forgejo-Signature", ""},
	{"X-Gogs-Signature", ""},
	{"X-Bee2d-Signature-256", "sha256="},
}

const webhookTokenHeader = "X-Gitlab-Token"

// webhookMAC is a signature a request carries, decoded.
type webhookMAC struct {
	header string
	mac    []byte
}

// webhookRefusal is why a request was refused, for the log: the header at fault (empty when none is) and
// what is wrong with it. It never holds a header's value.
type webhookRefusal struct{ header, reason string }

// ServeHTTP answers 202 and calls Trigger when the request is a POST whose signatures all hold; 405 to
// another method, 401 to a missing or wrong signature, 413 to a body over MaxBody.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		h.logger().Debug("webhook method not allowed", zap.String("remote", r.RemoteAddr), zap.String("method", r.Method))
		h.count(WebhookBadRequest)
		return
	}
	// Everything that can be refused without the body is refused before reading it, so that a caller
	// without the secret costs no hashing.
	macs, ref := h.checkHeaders(r.Header)
	if ref != nil {
		h.unauthorized(w, r, *ref)
		return
	}
	limit := h.maxBody()
	if r.ContentLength > limit {
		h.tooLarge(w, r, r.ContentLength)
		return
	}

	var mac hash.Hash
	var sink io.Writer = io.Discard
	if len(macs) > 0 {
		mac = hmac.New(sha256.New, h.Secret)
		sink = mac
	}
	// The body is read even when only a token authenticates the request, so that the limit holds alike.
	n, err := io.Copy(sink, io.LimitReader(r.Body, limit+1))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		h.logger().Debug("webhook body unreadable", zap.String("remote", r.RemoteAddr), zap.Error(err))
		h.count(WebhookBadRequest)
		return
	}
	if n > limit {
		h.tooLarge(w, r, -1)
		return
	}
	if mac != nil {
		sum := mac.Sum(nil)
		for _, p := range macs {
			if !hmac.Equal(sum, p.mac) {
				h.unauthorized(w, r, webhookRefusal{p.header, "signature does not match"})
				return
			}
		}
	}

	h.Trigger()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "fetch queued\n")
	h.logger().Debug("webhook fetch queued", zap.String("remote", r.RemoteAddr), zap.Int64("body_bytes", n))
	h.count(WebhookAccepted)
}

// checkHeaders checks what can be checked of the headers alone: that at least one is there, that each
// signature decodes to the length of a SHA-256 MAC, and the GitLab token. It returns the MACs left to
// check against the body.
func (h *Webhook) checkHeaders(hd http.Header) ([]webhookMAC, *webhookRefusal) {
	if len(h.Secret) == 0 {
		// Anyone can compute an HMAC with an empty key.
		return nil, &webhookRefusal{"", "no secret configured"}
	}
	var macs []webhookMAC
	seen := false
	for _, sh := range webhookMACHeaders {
		vals := hd.Values(sh.name)
		if len(vals) == 0 {
			continue
		}
		seen = true
		if len(vals) > 1 {
			return nil, &webhookRefusal{sh.name, "header repeated"}
		}
		hexed, ok := strings.CutPrefix(vals[0], sh.prefix)
		if !ok {
			return nil, &webhookRefusal{sh.name, "signature malformed"}
		}
		mac, err := hex.DecodeString(hexed)
		if err != nil || len(mac) != sha256.Size {
			return nil, &webhookRefusal{sh.name, "signature malformed"}
		}
		macs = append(macs, webhookMAC{sh.name, mac})
	}
	if vals := hd.Values(webhookTokenHeader); len(vals) > 0 {
		seen = true
		if len(vals) > 1 {
			return nil, &webhookRefusal{webhookTokenHeader, "header repeated"}
		}
		// Comparing digests keeps the comparison constant in time whatever the token's length.
		got, want := sha256.Sum256([]byte(vals[0])), sha256.Sum256(h.Secret)
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return nil, &webhookRefusal{webhookTokenHeader, "token does not match"}
		}
	}
	if !seen {
		return nil, &webhookRefusal{"", "no signature header"}
	}
	return macs, nil
}

func (h *Webhook) unauthorized(w http.ResponseWriter, r *http.Request, ref webhookRefusal) {
	http.Error(w, "unauthorized", http.StatusUnauthorized)
	h.logRefusal(r, WebhookUnauthorized, zap.String("header", ref.header), zap.String("reason", ref.reason))
	h.count(WebhookUnauthorized)
}

// tooLarge refuses a body over the limit; length is the declared Content-Length, or -1 when the body was
// cut short while reading.
func (h *Webhook) tooLarge(w http.ResponseWriter, r *http.Request, length int64) {
	http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
	fields := []zap.Field{zap.Int64("max_bytes", h.maxBody())}
	if length >= 0 {
		fields = append(fields, zap.Int64("content_length", length))
	}
	h.logRefusal(r, WebhookTooLarge, fields...)
	h.count(WebhookTooLarge)
}

func (h *Webhook) maxBody() int64 {
	if h.MaxBody <= 0 {
		return DefaultWebhookMaxBody
	}
	return h.MaxBody
}

// logRefusal logs a refused request at most once per webhookLogEvery; the next entry after a quiet spell
// tells how many were left out.
func (h *Webhook) logRefusal(r *http.Request, result string, fields ...zap.Field) {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	t := now()
	h.logMu.Lock()
	if !h.lastLog.IsZero() && t.Sub(h.lastLog) < webhookLogEvery {
		h.suppressed++
		h.logMu.Unlock()
		return
	}
	suppressed := h.suppressed
	h.lastLog, h.suppressed = t, 0
	h.logMu.Unlock()

	fields = append([]zap.Field{zap.String("remote", r.RemoteAddr), zap.String("result", result)}, fields...)
	if suppressed > 0 {
		fields = append(fields, zap.Int("suppressed", suppressed))
	}
	h.logger().Warn("webhook request refused", fields...)
}

func (h *Webhook) logger() *zap.Logger {
	if h.Log == nil {
		return zap.NewNop()
	}
	return h.Log
}

func (h *Webhook) count(result string) {
	if h.Metrics != nil {
		h.Metrics.Webhook(result)
	}
}

// ReadWebhookSecret reads the webhook secret file (--webhook-secret-file). One trailing newline is not part
// of the secret: editors and `echo` add it. It refuses a file that is empty (after the newline), larger
// than MaxWebhookSecretFile, or not a regular file; the warning is not empty when the file is readable by
// its group or by others. Errors name the file.
func ReadWebhookSecret(file string) (secret []byte, warning string, err error) {
	fail := func(format string, args ...any) ([]byte, string, error) {
		return nil, "", fmt.Errorf("webhook secret file %s: "+format, append([]any{file}, args...)...)
	}
	// A FIFO or a device would block the open or the read, so the kind is checked first and the open
	// does not wait for a writer; the type is checked again on what was opened.
	fi, err := os.Stat(file)
	if err != nil {
		return fail("%w", webhookPathCause(err))
	}
	if !fi.Mode().IsRegular() {
		return fail("not a regular file (%s)", webhookFileKind(fi.Mode()))
	}
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fail("%w", webhookPathCause(err))
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return fail("%w", webhookPathCause(err))
	}
	if !fi.Mode().IsRegular() {
		return fail("not a regular file (%s)", webhookFileKind(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxWebhookSecretFile+1))
	if err != nil {
		return fail("%w", webhookPathCause(err))
	}
	if len(data) > MaxWebhookSecretFile {
		return fail("larger than %d bytes", MaxWebhookSecretFile)
	}
	if s, ok := bytes.CutSuffix(data, []byte("\n")); ok {
		data, _ = bytes.CutSuffix(s, []byte("\r"))
	}
	if len(data) == 0 {
		return fail("empty")
	}
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		warning = fmt.Sprintf("webhook secret file %s is readable by %s (mode %04o); chmod 600 %s", file, webhookReaders(perm), perm, file)
	}
	return data, warning, nil
}

// webhookPathCause drops the path an *fs.PathError repeats, since the caller names the file already.
func webhookPathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func webhookReaders(perm fs.FileMode) string {
	switch {
	case perm&0o044 == 0o044:
		return "its group and others"
	case perm&0o004 != 0:
		return "others"
	default:
		return "its group"
	}
}

func webhookFileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return m.Type().String()
	}
}
