{
  description = "TaskFlow: an event-driven task pipeline (Rust API and worker, React dashboard)";

  # Plain nixpkgs, no rust-overlay/fenix: the workspace needs rustc >= 1.95 (edition 2024),
  # which nixos-unstable's rustPlatform has. An older nixpkgs fails the assertion below.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
        "x86_64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      version = "0.1.0";

      # What the Rust build reads; the dashboard, deploy files and docs stay out of its hash.
      rustSrc = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./Cargo.toml
          ./Cargo.lock
          ./crates
          ./migrations # embedded by refinery at compile time
          ./tests # workspace members: cargo reads their manifests
          ./xtask
        ];
      };

      # The lockfile is written without `resolved` URLs (npm's omit-lockfile-registry-resolved):
      # put back the registry URL npm itself would use, so importNpmLock can fetch each tarball
      # by the lockfile's integrity hash. package-lock.json stays the only input, with no extra hash.
      withResolved =
        lock:
        lock
        // {
          packages = lib.mapAttrs (
            path: module:
            if path == "" || module ? resolved || module.link or false || module.inBundle or false then
              module
            else
              let
                name = module.name or (lib.last (lib.splitString "node_modules/" path));
                file = lib.last (lib.splitString "/" name);
              in
              module // { resolved = "https://registry.npmjs.org/${name}/-/${file}-${module.version}.tgz"; }
          ) lock.packages;
        };

      perSystem =
        pkgs:
        let
          inherit (pkgs) rustPlatform;

          # One attrset for every Rust derivation: same source, same vendored crates (from Cargo.lock).
          rustCommon = {
            inherit version;
            src =
              assert lib.assertMsg (lib.versionAtLeast pkgs.rustc.version "1.95")
                "TaskFlow needs rustc >= 1.95; nixpkgs has ${pkgs.rustc.version}: update the nixpkgs input";
              rustSrc;
            cargoLock.lockFile = ./Cargo.lock;
          };

          # Both binaries in one build; `api` and `worker` below each take one of them.
          taskflow = rustPlatform.buildRustPackage (
            rustCommon
            // {
              pname = "taskflow";
              cargoBuildFlags = [
                "-p"
                "taskflow-api"
                "-p"
                "taskflow-worker"
              ];
              # Unit tests are `checks.unit`; the integration suite needs live services.
              doCheck = false;
              meta.description = "TaskFlow's API and worker";
            }
          );

          bin =
            name:
            pkgs.runCommand "${name}-${version}" { meta.mainProgram = name; } ''
              install -Dm755 ${taskflow}/bin/${name} $out/bin/${name}
            '';
          api = bin "taskflow-api";
          worker = bin "taskflow-worker";

          frontend = pkgs.buildNpmPackage {
            pname = "taskflow-dashboard";
            inherit version;
            src = ./frontend;
            npmDeps = pkgs.importNpmLock {
              npmRoot = ./frontend;
              packageLock = withResolved (lib.importJSON ./frontend/package-lock.json);
            };
            npmConfigHook = pkgs.importNpmLock.npmConfigHook;
            # `npm run build` type-checks, then writes dist/.
            installPhase = ''
              runHook preInstall
              cp -r dist $out
              runHook postInstall
            '';
          };

          # A cargo command over the vendored crates, as a check that builds nothing to keep.
          cargoCheck =
            name: nativeBuildInputs: command:
            rustPlatform.buildRustPackage (
              rustCommon
              // {
                pname = "taskflow-${name}";
                inherit nativeBuildInputs;
                buildPhase = command;
                doCheck = false;
                installPhase = "touch $out";
              }
            );

          image =
            {
              name,
              package,
              port,
              cmd ? [ ],
              env ? [ ],
            }:
            pkgs.dockerTools.buildLayeredImage {
              inherit name;
              tag = "latest";
              contents = [ pkgs.cacert ];
              extraCommands = "mkdir -m 1777 tmp";
              config = {
                Entrypoint = [ (lib.getExe package) ];
                Cmd = cmd;
                User = "65534:65534"; # nobody
                ExposedPorts."${toString port}/tcp" = { };
                Env = [ "SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt" ] ++ env;
              };
            };
        in
        {
          packages = {
            inherit api worker frontend;
            default = api;
          }
          # Images hold Linux binaries: built on Linux systems only.
          // lib.optionalAttrs pkgs.stdenv.isLinux {
            api-image = image {
              name = "taskflow-api";
              package = api;
              port = 8000;
              cmd = [ "serve" ]; # `docker run taskflow-api:latest migrate` runs the migrations
              env = [ "STATIC_DIR=${frontend}" ];
            };
            worker-image = image {
              name = "taskflow-worker";
              package = worker;
              port = 9100;
            };
          };

          checks = {
            fmt =
              pkgs.runCommand "taskflow-fmt"
                {
                  nativeBuildInputs = [
                    pkgs.cargo
                    pkgs.rustfmt
                  ];
                }
                ''
                  cp -r ${rustSrc} src && chmod -R u+w src && cd src
                  HOME=$TMPDIR cargo fmt --all -- --check
                  touch $out
                '';
            clippy = cargoCheck "clippy" [ pkgs.clippy ] ''
              cargo clippy --offline --workspace --all-targets -- -D warnings
            '';
            # Unit tests only: the integration suite (tests/) needs MySQL, RabbitMQ and Redis.
            unit = cargoCheck "unit-tests" [ ] ''
              cargo test --offline -p taskflow-core -p taskflow-worker -p taskflow-api --lib
            '';
          };

          devShells.default = pkgs.mkShell {
            packages =
              with pkgs;
              [
                cargo
                rustc
                clippy
                rustfmt
                rust-analyzer
                cargo-nextest
                # package.json wants Node >= 20.19; nixpkgs' default LTS satisfies it (Node 20
                # reached end of life in April 2026, so nodejs_20 may be gone from nixpkgs).
                nodejs
                mariadb # server and client
                rabbitmq-server
                redis
                yamllint
                actionlint
                kubeconform
                jq
                # schemathesis for the contract check, where this nixpkgs packages it;
                # otherwise `pip install schemathesis`.
                (python3.withPackages (ps: lib.optional (ps ? schemathesis) ps.schemathesis))
              ]
              ++ lib.optional stdenv.isLinux chromium;
            env =
              {
                RUST_SRC_PATH = "${rustPlatform.rustLibSrc}";
              }
              // lib.optionalAttrs pkgs.stdenv.isLinux {
                # frontend/e2e launches this browser (its default is Debian's /usr/bin/chromium).
                CHROMIUM_PATH = "${pkgs.chromium}/bin/chromium";
              };
          };
        };

      all = forAllSystems perSystem;
    in
    {
      packages = lib.mapAttrs (_: s: s.packages) all;
      checks = lib.mapAttrs (_: s: s.checks) all;
      devShells = lib.mapAttrs (_: s: s.devShells) all;
    };
}
