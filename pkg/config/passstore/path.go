package passstore

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultFolder is the folder of the user's password store that Bee2 keeps its passwords in.
const DefaultFolder = "bee2"

// StoreDir is Bee2's pass store directory: security.password_store when set (already resolved by the caller
// against the settings file; a leading ~/ is the home directory), else ~/.password-store/<folder>, folder
// being security.folder or "bee2".
func StoreDir(passwordStore, folder, home string) string {
	switch {
	case passwordStore == "~":
		return home
	case strings.HasPrefix(passwordStore, "~/"):
		return filepath.Join(home, passwordStore[2:])
	case passwordStore != "":
		return passwordStore
	}
	if folder == "" {
		folder = DefaultFolder
	}
	return filepath.Join(home, ".password-store", folder)
}

// entryPath joins dir, folder and name (with ext), refusing anything that would leave dir: the names come
// from settings (container names, database types), and a password file must stay inside its store.
func entryPath(dir, folder, name, ext string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return "", fmt.Errorf("password name %q: not a file name", name)
	}
	rel := filepath.Join(folder, name+ext)
	if folder == "" || strings.ContainsRune(folder, 0) || !filepath.IsLocal(rel) || filepath.Clean(folder) != folder {
		return "", fmt.Errorf("password folder %q: not a relative path inside the store", folder)
	}
	return filepath.Join(dir, rel), nil
}
