module intake.dev/intake

go 1.19
