// Package passstore keeps the database passwords of Bee2's settings: in a pass(1) store encrypted with the
// user's own gpg (GPGStore), or in plain files under the secrets directory when there is no pgp_id
// (FileStore). A password asked for the first time is generated and kept, so every later run reads the same.
package passstore

// Store gives the password kept under folder/name (e.g. "database/postgres", "mastodon"), generating and
// keeping a new one the first time; created says whether it was made by this call.
type Store interface {
	Get(folder, name string) (value string, created bool, err error)
}

var (
	_ Store = GPGStore{}
	_ Store = FileStore{}
)
