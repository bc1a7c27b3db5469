module github.com/state-sync/state-sync

go 1.26.0

require (
	github.com/sourcegraph/jsonrpc2 v0.2.3 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	github.com/stretchr/testify v1.11.1 // indirect
	golang.org/x/sync v0.25.0 // indirect
)
