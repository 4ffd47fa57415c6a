package gitops

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bee2d/bee2d/internal/atomicfile"
)

// runningFile is the record of the commit in force, in the follower's directory.
const runningFile = "running.json"

// Record is what the follower writes of the commit in force, for the next start and for `bee2d status`.
type Record struct {
	Commit  string `json:"commit"`
	Subject string `json:"subject,omitempty"`
	Branch  string `json:"branch"`
	// Path is the settings file's path in the repository; URL the repository, without credentials.
	Path string `json:"path"`
	URL  string `json:"url"`
	// Tree is the work tree the settings were loaded from.
	Tree string `json:"tree"`
	// Time is when the commit was put in force.
	Time time.Time `json:"time"`
}

// ReadRunning reads the record the follower keeps in dir (its <state-dir>/git).
func ReadRunning(dir string) (Record, error) {
	var r Record
	data, err := os.ReadFile(filepath.Join(dir, runningFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(dir, runningFile), err)
	}
	return r, nil
}

// writeRunning replaces the record in dir whole: a crash leaves the old record or the new one, never a part.
func writeRunning(dir string, r Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, runningFile), append(data, '\n'), 0o644)
}
