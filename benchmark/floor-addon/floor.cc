// The C++ native-call floor of the benchmark (dev-only fixture, never shipped).
//
// Owns four functions that do what the window-space addon's floor functions do
// (crates/window-space-node/src/fast.rs: fastEmpty, fastCasInternal), written
// twice: through node-addon-api (the C++ wrapper most addons use) and through
// plain Node-API C calls (what fast.rs hand-writes in Rust). The benchmark
// compares napi-rs against these to measure the binding's own overhead.
#include <napi.h>
#include <node_api.h>

#include <atomic>
#include <cstdint>

namespace {

std::atomic<uint32_t> cas_words[1024];

bool cas(uint32_t index, uint32_t expected, uint32_t desired) {
  return cas_words[index % 1024].compare_exchange_strong(expected, desired, std::memory_order_acq_rel,
                                                          std::memory_order_acquire);
}

// ---- node-addon-api --------------------------------------------------------

Napi::Value Empty(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), 0); }

Napi::Value CasInternal(const Napi::CallbackInfo& info) {
  uint32_t index = info[0].As<Napi::Number>().Uint32Value();
  uint32_t expected = info[1].As<Napi::Number>().Uint32Value();
  uint32_t desired = info[2].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(info.Env(), cas(index, expected, desired) ? 1 : 0);
}

// ---- plain Node-API --------------------------------------------------------

napi_value RawEmpty(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, nullptr);
  napi_value out;
  napi_create_double(env, 0, &out);
  return out;
}

napi_value RawCasInternal(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t v[3] = {0, 0, 0};
  for (size_t i = 0; i < 3 && i < argc; i++) napi_get_value_uint32(env, argv[i], &v[i]);
  napi_value out;
  napi_create_double(env, cas(v[0], v[1], v[2]) ? 1 : 0, &out);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("empty", Napi::Function::New(env, Empty, "empty"));
  exports.Set("casInternal", Napi::Function::New(env, CasInternal, "casInternal"));
  napi_value f;
  napi_create_function(env, "rawEmpty", NAPI_AUTO_LENGTH, RawEmpty, nullptr, &f);
  exports.Set("rawEmpty", Napi::Value(env, f));
  napi_create_function(env, "rawCasInternal", NAPI_AUTO_LENGTH, RawCasInternal, nullptr, &f);
  exports.Set("rawCasInternal", Napi::Value(env, f));
  return exports;
}

}  // namespace

NODE_API_MODULE(floor, Init)
