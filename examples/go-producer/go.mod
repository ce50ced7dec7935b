module intake.dev/examples/go-producer

go 1.19

require intake.dev/intake v1.0.0

// The binding from this repository (no module proxy is needed).
replace intake.dev/intake => ../../bindings/go
