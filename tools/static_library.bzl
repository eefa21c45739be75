"""cc_static_library: one archive holding every object of a cc_library's closure.

Bazel archives each cc_library separately (libfoo.a per target). An installed
library needs one archive with all of them; this rule collects the object
files of every transitive dependency that is built from source (system
libraries pulled in through linkopts have no objects and stay linkopts) and
archives them with the toolchain's ar. PIC objects are used when the toolchain
built them, so the archive links into PIE executables and shared objects.
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

def _cc_static_library_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    objects = []
    seen = {}
    for dep in ctx.attr.deps:
        for linker_input in dep[CcInfo].linking_context.linker_inputs.to_list():
            for lib in linker_input.libraries:
                objs = lib.pic_objects if lib.pic_objects else lib.objects
                for o in objs:
                    if o.path not in seen:
                        seen[o.path] = True
                        objects.append(o)
    if not objects:
        fail("cc_static_library %s: no object files in the deps' closure" % ctx.label)
    out = ctx.actions.declare_file(ctx.attr.out)
    args = ctx.actions.args()
    args.add(cc_toolchain.ar_executable)
    args.add(out)
    args.add_all(objects)

    # "q" appends without replacing, so objects with equal basenames from
    # different packages all stay in the archive; "s" writes the index.
    ctx.actions.run_shell(
        inputs = depset(objects, transitive = [cc_toolchain.all_files]),
        outputs = [out],
        arguments = [args],
        command = 'ar="$1"; out="$2"; shift 2; rm -f "$out"; "$ar" qcsD "$out" "$@"',
        mnemonic = "CcStaticLibrary",
        progress_message = "Archiving %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

cc_static_library = rule(
    implementation = _cc_static_library_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "out": attr.string(mandatory = True),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    incompatible_use_toolchain_transition = True,
)
