package dockerx

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
)

// BuildError is a build the engine refused: the Dockerfile step that failed and the engine's message.
type BuildError struct {
	// Step is the engine's step line, e.g. "Step 2/3 : RUN make"; empty when the build failed before a step.
	Step    string
	Message string
}

// Error reads like the engine's own report: "Step 2/3 : RUN make: The command ... returned a non-zero code: 2".
func (e *BuildError) Error() string {
	if e.Step == "" {
		return e.Message
	}
	return e.Step + ": " + e.Message
}

// BuildImage builds an image from req.ContextDir with the engine's classic builder (which every engine from
// API 1.41 on has, and which needs no session) and returns the image id. Progress goes to req.Output as text.
// A failed step gives a *BuildError.
func (c *Client) BuildImage(ctx context.Context, req BuildRequest) (string, error) {
	what := req.ContextDir
	if len(req.Tags) > 0 {
		what = req.Tags[0]
	}
	dockerfile := req.Dockerfile
	if dockerfile == "" {
		dockerfile = defaultDockerfile
	}
	dockerfile = filepath.ToSlash(filepath.Clean(dockerfile))
	if !filepath.IsLocal(dockerfile) {
		return "", fmt.Errorf("build image %s: dockerfile %s is outside the context", what, req.Dockerfile)
	}
	entries, err := contextEntries(req.ContextDir, dockerfile)
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", what, err)
	}
	if !hasRegularFile(entries, dockerfile) {
		return "", fmt.Errorf("build image %s: no %s in %s", what, dockerfile, req.ContextDir)
	}
	out := req.Output
	if out == nil {
		out = io.Discard
	}

	ctx, cancel := c.long(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	tarDone := make(chan error, 1)
	go func() {
		err := writeContextTar(pw, entries)
		pw.CloseWithError(err)
		tarDone <- err
	}()
	id, err := c.runBuild(ctx, pr, req, dockerfile, out)
	// Unblock the tar writer if the engine stopped reading early, then wait for it so no goroutine outlives
	// the call.
	pr.CloseWithError(errBuildDone)
	// A context that could not be read is the cause of whatever the engine said about the cut stream.
	if tarErr := <-tarDone; tarErr != nil && !errors.Is(tarErr, errBuildDone) && !errors.Is(tarErr, io.ErrClosedPipe) {
		return "", fmt.Errorf("build image %s: send context: %w", what, tarErr)
	}
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", what, err)
	}
	return id, nil
}

// errBuildDone tells the context writer that the engine's answer is complete and nothing more will be read.
var errBuildDone = errors.New("build finished")

func (c *Client) runBuild(ctx context.Context, body io.Reader, req BuildRequest, dockerfile string, out io.Writer) (string, error) {
	resp, err := c.api.ImageBuild(ctx, body, build.ImageBuildOptions{
		Tags:        req.Tags,
		Dockerfile:  dockerfile,
		Labels:      req.Labels,
		BuildArgs:   req.BuildArgs,
		NoCache:     req.NoCache,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()

	var id, step, built string
	err = decodeMessages(resp.Body, func(m message) error {
		if m.Stream != "" {
			io.WriteString(out, m.Stream)
			for line := range strings.Lines(m.Stream) {
				line = strings.TrimSpace(line)
				if strings.HasPrefix(line, "Step ") {
					step = line
				}
				if rest, ok := strings.CutPrefix(line, "Successfully built "); ok {
					built = rest
				}
			}
		}
		if m.Status != "" && m.Progress == "" {
			writeStatus(out, m)
		}
		if len(m.Aux) > 0 {
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
		if msg := m.errorText(); msg != "" {
			return &BuildError{Step: step, Message: msg}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if id == "" {
		id = built
	}
	if id == "" {
		return "", errNoID
	}
	return id, nil
}

func hasRegularFile(entries []contextEntry, rel string) bool {
	for _, e := range entries {
		if e.rel == rel {
			return e.mode.IsRegular()
		}
	}
	return false
}

// PullImage pulls ref from its registry, writing one line per layer state change to out (nil discards them).
func (c *Client) PullImage(ctx context.Context, ref string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	ctx, cancel := c.long(ctx)
	defer cancel()
	body, err := c.api.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	defer body.Close()
	err = decodeMessages(body, func(m message) error {
		if msg := m.errorText(); msg != "" {
			return errors.New(msg)
		}
		// Progress bars are for terminals; their state changes are enough in a log.
		if m.Status != "" && m.Progress == "" {
			writeStatus(out, m)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	return nil
}

// message is one line of the engine's JSON progress stream (builds and pulls).
type message struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Progress    string `json:"progress"`
	ID          string `json:"id"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

func (m message) errorText() string {
	if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
		return strings.TrimSpace(m.ErrorDetail.Message)
	}
	return strings.TrimSpace(m.Error)
}

func writeStatus(out io.Writer, m message) {
	if m.ID != "" {
		fmt.Fprintf(out, "%s: %s\n", m.ID, m.Status)
		return
	}
	fmt.Fprintln(out, m.Status)
}

// decodeMessages calls fn for each message until the stream ends or fn returns an error.
func decodeMessages(r io.Reader, fn func(message) error) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read progress: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}
