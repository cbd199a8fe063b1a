{
  "targets": [
    {
      "target_name": "svdlora",
      "sources": ["native/addon.cc", "native/create.cc", "native/ops.cc", "native/linalg_autograd.cc", "native/runtime.cc", "native/fused.cc", "native/distributed.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!@(node scripts/libtorch.mjs include)", "<!@(node scripts/c10d.mjs include)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "<!@(node scripts/libtorch.mjs defines)", "<!@(node scripts/c10d.mjs defines)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "libraries": ["<!@(node scripts/libtorch.mjs libs)", "<!@(node scripts/c10d.mjs libs)"]
    }
  ]
}
