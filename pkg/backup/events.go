package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// helperEvents reads the helper's stderr: JSON events, and any other text (a crash) kept for the error.
type helperEvents struct {
	progress func(bytes, files int64)

	mu     sync.Mutex
	buf    []byte
	result *helperResult
	errMsg string
	other  bytes.Buffer
}

func (h *helperEvents) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = append(h.buf, p...)
	for {
		i := bytes.IndexByte(h.buf, '\n')
		if i < 0 {
			break
		}
		h.line(h.buf[:i])
		h.buf = h.buf[i+1:]
	}
	return len(p), nil
}

func (h *helperEvents) line(l []byte) {
	var ev event
	if json.Unmarshal(l, &ev) != nil || ev.Event == "" {
		if h.other.Len() < 16<<10 {
			h.other.Write(l)
			h.other.WriteByte('\n')
		}
		return
	}
	switch ev.Event {
	case "progress":
		if h.progress != nil {
			h.progress(ev.Bytes, ev.Files)
		}
	case "result":
		h.result = ev.Result
	case "error":
		h.errMsg = ev.Error
	}
}

// failure explains a helper that exited with code.
func (h *helperEvents) failure(what string, code int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.buf) > 0 {
		h.line(h.buf)
		h.buf = nil
	}
	msg := h.errMsg
	if msg == "" {
		msg = strings.TrimSpace(h.other.String())
	}
	if msg == "" {
		msg = "no message"
	}
	return fmt.Errorf("%s helper exited with code %d: %s", what, code, msg)
}
