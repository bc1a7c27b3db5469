module github.com/state-sync/state-sync/internal/jsonpatch/libcompare

go 1.26.0

replace github.com/state-sync/state-sync => ../../..

require (
	github.com/evanphx/json-patch/v5 v5.9.11
	github.com/state-sync/state-sync v0.0.0-00010101000000-000000000000
	github.com/wI2L/jsondiff v0.7.1
)

require (
	github.com/tidwall/gjson v1.18.0 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.1 // indirect
	github.com/tidwall/sjson v1.2.5 // indirect
)
