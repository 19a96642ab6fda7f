# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_regfsck_global_optspecs
    string join \n root= config= json j/jobs= q/quiet v/verbose endpoint= region= io-concurrency= write-rate= color= h/help V/version
end

function __fish_regfsck_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_regfsck_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_regfsck_using_subcommand
    set -l cmd (__fish_regfsck_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c regfsck -n "__fish_regfsck_needs_command" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_needs_command" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_needs_command" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_needs_command" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_needs_command" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_needs_command" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_needs_command" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_needs_command" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_needs_command" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_needs_command" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_needs_command" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_needs_command" -s V -l version -d 'Print version'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "verify" -d 'Check every blob, link, tag and manifest reference; report problems, fsck-style'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "ls" -d 'List tags as REPO:TAG:DIGEST (every repository\'s, or the named ones\'), untagged manifests as REPO@DIGEST, or the repositories as the catalog counts them'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "show" -d 'Show one image or index: media type, config, layers or children with their platforms, push time, tags, referrers, total and exclusive size'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "gc" -d 'Mark and sweep: remove the blobs no manifest needs, as the registry\'s garbage-collect would, without its data-loss bugs. Run it with the registry stopped or read-only'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "rm-repo" -d 'Remove repositories safely (never a nested one) and the blobs only they referred to. The root comes from --root, REGFSCK_ROOT or --config'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "prune" -d 'Retention: keep the newest N tags, recent ones and ones matching a pattern per repository; remove the other tags, and the manifests only they reached; --gc sweeps'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "rm-tag" -d 'Remove tags, and only them: a manifest another tag (or a kept index) still needs stays; one only the removed tags reached is dropped, for gc to free (as prune does)'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "rm-manifest" -d 'Remove manifests by digest, with every tag naming them and what only they reach (index children, untagged referrers), for gc to free; refused (exit 16) while an index or a referrer that stays still names one, unless --force'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "repair" -d 'Fix what verify finds without losing intact data: quarantine corrupt blobs, relink, reshard, rewrite links, repoint broken tags, purge stale uploads; journaled, undoable'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "du" -d 'Disk usage per repository: bytes referred to, bytes only it refers to (what rm-repo frees), shared bytes; and the bytes gc would free'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "serve" -d 'Serve the layout read-only over the registry\'s pull API (for skopeo, docker, containerd), with a web UI at / and Prometheus metrics at /metrics'
complete -c regfsck -n "__fish_regfsck_needs_command" -f -a "generate" -d 'Write the man pages and shell completions (for packagers and the repository)'
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l read-data-subset -d 'Hash only subset N of M (e.g. 3/30): the blobs whose digest falls in it, the same ones every time, so N = 1..M on successive runs (a nightly job, say) hashes every blob once over M runs; the structure is checked whole every time' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l metrics-file -d 'Write the run\'s summary (findings by severity and kind, blobs and bytes swept, duration, exit status, time of the run) to FILE in the Prometheus text format, for node_exporter\'s textfile collector (name it *.prom in its --collector.textfile.directory). Written to a temporary file beside it, then renamed over it: a scrape never sees half a file' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l no-content -d 'Check structure only: do not hash blob contents'
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l sort -d 'Order of the tags within each repository (repositories stay in name order): name bytewise; version ascending (latest and other non-versions first); pushed oldest first, so the newest push is the last line' -r -f -a "pushed\t'By push time: the modification time of the tag\'s `current/link`'
version\t'By version: digit runs compare as numbers (`1_2` before `1_10`), semver pre-releases before their release (`1.10.0-rc.1` before `1.10.0`); tags that do not start with a digit (or `v` and a digit), such as `latest`, count as the oldest'
name\t'By name, byte order (what `sort` does: `1_10` before `1_2`)'"
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l untagged -d 'List manifests no tag reaches (neither tagged nor a child of a tagged index)'
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l repositories -d 'List the repositories, as the registry\'s /v2/_catalog does (directories with _layers, emptied ones included), one a line'
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand ls" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l min-age -d 'Keep unreferenced blobs and untagged manifests touched more recently than this, so a push in progress does not lose them (e.g. 0, 30m, 1h, 7d)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l upload-age -d 'On object storage, abort the unfinished uploads (in-progress multipart uploads the registry never aborts) started longer ago than this (the registry\'s purge age)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l metrics-file -d 'Write the run\'s summary (findings by severity and kind, blobs and bytes swept, duration, exit status, time of the run) to FILE in the Prometheus text format, for node_exporter\'s textfile collector (name it *.prom in its --collector.textfile.directory). Written to a temporary file beside it, then renamed over it: a scrape never sees half a file' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l log -d 'Append one line per path deleted (the storage path; for an object store, its URL) to FILE, each line written out as soon as the path is gone, so what an interrupted or killed run deleted is there too' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -s n -l dry-run -d 'Print the plan; delete nothing'
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -s m -l delete-untagged -d 'Also drop manifests no tag reaches (their revision links and tag history). The children of a kept index and referrers of a kept manifest are always kept'
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l force -d 'Sweep even when the graph is broken (a manifest missing or unparseable, a link that cannot be read, a tag pointing at nothing). Keeps what the broken parts could refer to where that can be known; the rest may be lost. Also sweeps while the registry of --config answers at its http.addr'
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand gc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l metrics-file -d 'Write the run\'s summary (findings by severity and kind, blobs and bytes swept, duration, exit status, time of the run) to FILE in the Prometheus text format, for node_exporter\'s textfile collector (name it *.prom in its --collector.textfile.directory). Written to a temporary file beside it, then renamed over it: a scrape never sees half a file' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l log -d 'Append one line per path deleted (the storage path; for an object store, its URL) to FILE, each line written out as soon as the path is gone, so what an interrupted or killed run deleted is there too' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -s n -l dry-run -d 'Print what would be removed; change nothing'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l keep-blobs -d 'Remove the repositories only; leave their blobs for gc'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l force -d 'Remove even while the registry of --config answers at its http.addr'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-repo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l repo -d 'Repositories to prune (glob: `*` within one path component, `**` across them); repeatable; default: every repository' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l keep-last -d 'Keep the N newest tags of each repository (in --order; every tag counts, latest too)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l keep-within -d 'Keep tags pushed within this long (e.g. 7d, 12h): their current/link is younger' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l keep-tag -d 'Keep tags matching this regular expression (unanchored: write ^latest$); repeatable' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l order -d 'What "newest" means for --keep-last' -r -f -a "pushed\t'By push time: the modification time of the tag\'s `current/link`'
version\t'By version: digit runs compare as numbers (`1_2` before `1_10`), semver pre-releases before their release (`1.10.0-rc.1` before `1.10.0`); tags that do not start with a digit (or `v` and a digit), such as `latest`, count as the oldest'
name\t'By name, byte order (what `sort` does: `1_10` before `1_2`)'"
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l policy -d 'Read the policies from a file (TOML or YAML, by extension) instead of the options above: a list `policies`, each with repositories, keep-last, keep-within, keep-tag and order; the first whose globs match a repository applies' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l min-age -d 'Grace period of the sweep (as gc\'s --min-age)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l metrics-file -d 'Write the run\'s summary (findings by severity and kind, blobs and bytes swept, duration, exit status, time of the run) to FILE in the Prometheus text format, for node_exporter\'s textfile collector (name it *.prom in its --collector.textfile.directory). Written to a temporary file beside it, then renamed over it: a scrape never sees half a file' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l log -d 'Append one line per path deleted (the storage path; for an object store, its URL) to FILE, each line written out as soon as the path is gone, so what an interrupted or killed run deleted is there too' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -s n -l dry-run -d 'Print the plan (what is kept and why, what is removed); change nothing'
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l gc -d 'Then sweep the blobs nobody needs any more (gc, in the same run)'
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l force -d 'Prune (and sweep) even when a selected repository\'s graph is broken, or while the registry of --config answers at its http.addr'
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l min-age -d 'Grace period of the sweep (as gc\'s --min-age)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l metrics-file -d 'Write the run\'s summary (findings by severity and kind, blobs and bytes swept, duration, exit status, time of the run) to FILE in the Prometheus text format, for node_exporter\'s textfile collector (name it *.prom in its --collector.textfile.directory). Written to a temporary file beside it, then renamed over it: a scrape never sees half a file' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l log -d 'Append one line per path deleted (the storage path; for an object store, its URL) to FILE, each line written out as soon as the path is gone, so what an interrupted or killed run deleted is there too' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -s n -l dry-run -d 'Print the plan (what is removed, what is kept and why); change nothing'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l gc -d 'Then sweep the blobs nobody needs any more (gc, in the same run)'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l force -d 'Remove (and sweep) even when the repository\'s graph is broken, or while the registry of --config answers at its http.addr'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-tag" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l min-age -d 'Grace period of the sweep (as gc\'s --min-age)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l metrics-file -d 'Write the run\'s summary (findings by severity and kind, blobs and bytes swept, duration, exit status, time of the run) to FILE in the Prometheus text format, for node_exporter\'s textfile collector (name it *.prom in its --collector.textfile.directory). Written to a temporary file beside it, then renamed over it: a scrape never sees half a file' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l log -d 'Append one line per path deleted (the storage path; for an object store, its URL) to FILE, each line written out as soon as the path is gone, so what an interrupted or killed run deleted is there too' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -s n -l dry-run -d 'Print the plan (the tags and manifests removed, what stays and why); change nothing'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l gc -d 'Then sweep the blobs nobody needs any more (gc, in the same run)'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l force -d 'Remove even when an index or a referrer that stays names the manifest (it is left dangling), when the repository\'s graph is broken, or while the registry of --config answers at its http.addr'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand rm-manifest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l upload-age -d 'Quarantine unfinished uploads started longer ago than this (the registry\'s purge age)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l undo -d 'Undo an earlier repair from its quarantine directory (as the repair printed it: an absolute path names the root too; on object storage the run, with the s3:// ROOT): restores every file it moved or wrote. With --dry-run, shows what it would restore' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -s n -l dry-run -d 'Print the plan; change nothing'
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -s y -l yes -d 'Do not ask for confirmation (needed when stdin is not a terminal)'
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l force -d 'Repair (or undo) even while the registry of --config answers at its http.addr'
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand repair" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l sort -d 'Order of the repositories' -r -f -a "size\t'Largest first'
name\t'By repository name'"
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l tags -d 'Also the size of each tag (its manifest and everything it refers to)'
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand du" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l addr -d 'Address to listen on: HOST:PORT, [IPV6]:PORT, or :PORT for every interface [default: the config\'s http.addr, else 127.0.0.1:5000]' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l htpasswd -d 'Require basic authentication against an htpasswd file (bcrypt entries, as made by `htpasswd -B`), as the registry\'s htpasswd auth [default: the config\'s auth.htpasswd.path]' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l realm -d 'Realm of the basic-auth challenge [default: the config\'s auth.htpasswd.realm, else regfsck]' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l tls-cert -d 'Serve HTTPS with this PEM certificate chain (with --tls-key) [default: the config\'s http.tls.certificate]' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l tls-key -d 'The PEM private key of --tls-cert' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l header-timeout -d 'Close a connection whose request head (request line and headers; on a new HTTPS connection, the TLS handshake too) has not fully arrived this long after it started' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l idle-timeout -d 'Close a connection idle this long between requests, or whose client has read nothing of a response for this long' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l cors-origin -d 'Allow a web page from ORIGIN (as `https://ui.example.com`, or `*` for any, then without credentials) to call the API and read the answers: CORS headers on every response, and OPTIONS preflight requests answered without authentication (for a UI such as Joxit docker-registry-ui in front of this server). May be repeated' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l max-connections -d 'Serve at most N connections at once; more wait in the listen backlog until one closes' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l out -d 'Directory to write man/ and completions/ into (required: nothing is written anywhere else, the current directory included)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l root -d 'Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or s3://BUCKET/PREFIX (the registry\'s rootdirectory in that bucket). Also read from REGFSCK_ROOT' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l config -d 'Read the root from the registry\'s config.yml (storage.filesystem.rootdirectory, or the storage.s3 block, with the registry\'s REGISTRY_STORAGE_* environment overrides)' -r -F
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -s j -l jobs -d 'Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest reads when the local disk\'s cache is cold)' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l endpoint -d 'The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW, SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l region -d 'The S3 region (also AWS_REGION; default us-east-1). Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l io-concurrency -d 'Requests in flight at once against an object store' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l write-rate -d 'Write requests a second, at most, against an object store (a DeleteObjects request removes up to 1000 keys); failed requests are retried with backoff' -r
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l color -d 'Colour the severities of the human report: auto (only when stdout is a terminal and NO_COLOR is unset or empty), always, never' -r -f -a "auto\t'When stdout is a terminal and NO_COLOR is unset or empty'
always\t'Always (even into a pipe or a file)'
never\t'Never'"
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -l json -d 'Print one JSON document on stdout instead of the human report'
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -s q -l quiet -d 'No progress bar'
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -s v -l verbose -d 'List info findings too (orphan blobs, untagged manifests, uploads in progress)'
complete -c regfsck -n "__fish_regfsck_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
