# The C++ native-call floor of the benchmark (dev-only fixture, never shipped):
# an empty function and a one-CAS function, through node-addon-api and through
# plain Node-API. Built by benchmark/lib/floor.mjs with node-gyp --nodedir=/usr.
{
  "targets": [
    {
      "target_name": "floor",
      "sources": ["floor.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17"]
    }
  ]
}
