# The two commands (see README.md):
#   make demo   install what is missing, build, run torii server with a demo data directory
#   make test   install what is missing, build, run the whole suite (also under ASan+UBSan),
#               fuzz briefly, lint, scan for secrets, check the hardening of the binary
.PHONY: demo test bootstrap build clean

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake --preset dev >/dev/null
	@cmake --build --preset dev

demo: bootstrap
	@scripts/demo

test: bootstrap
	@scripts/test

clean:
	rm -rf build
