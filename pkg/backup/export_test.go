package backup

// HelperLabelsForTest exposes the helper's labels to the external tests.
func HelperLabelsForTest(prefix, server string) map[string]string {
	return helperLabels(prefix, server, "backup", nil)
}
