package resilient_test

func maybeServeInNamespace() {}
