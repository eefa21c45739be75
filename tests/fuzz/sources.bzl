"""cc_sources: the source files of cc_library targets, as runfiles.

The fuzz target is compiled by a shell test with clang, outside Bazel's
toolchain, from the very sources the libraries are built from. An aspect
reads each library's srcs and hdrs, so the packages under test need not
export their files, and editing any of them reruns the test.
"""

_SourcesInfo = provider(fields = ["files"])

def _sources_aspect_impl(target, ctx):
    files = []
    for attr in ("srcs", "hdrs"):
        for t in getattr(ctx.rule.attr, attr, []):
            files.extend(t.files.to_list())
    return [_SourcesInfo(files = depset(files))]

_sources_aspect = aspect(implementation = _sources_aspect_impl)

def _cc_sources_impl(ctx):
    files = depset(transitive = [lib[_SourcesInfo].files for lib in ctx.attr.libs])
    return [DefaultInfo(files = files, runfiles = ctx.runfiles(transitive_files = files))]

cc_sources = rule(
    implementation = _cc_sources_impl,
    attrs = {"libs": attr.label_list(aspects = [_sources_aspect])},
)
