// hwyconv/impl/list.hpp - the implementations of each pass, in order of preference. Conv plans every one
// that can run a layer and holds the one of least estimated cost (impl/impl.hpp, choose); StaticConv
// makes the same choice at compile time (choose_static). A new algorithm (bf16, Winograd, ...) is one
// more entry here. The depthwise entries run the depthwise layers and only them; the last entry of
// each list runs every other layer that ConvDesc::check() accepts, grouped ones included.
#pragma once

#include <tuple>

#include "hwyconv/impl/bwd_d_col2im.hpp"
#include "hwyconv/impl/bwd_d_phases.hpp"
#include "hwyconv/impl/bwd_w_minibatch.hpp"
#include "hwyconv/impl/bwd_w_tasks.hpp"
#include "hwyconv/impl/depthwise.hpp"
#include "hwyconv/impl/fwd_direct.hpp"
#include "hwyconv/impl/fwd_fold.hpp"

namespace hwyconv::impl {

using FwdImpls = std::tuple<FwdDepthwise, FwdFold, FwdDirect>;
using BwdDataImpls = std::tuple<BwdDataDepthwise, BwdDataCol2im, BwdDataPhases>;
using BwdWeightsImpls = std::tuple<BwdWDepthwise, BwdWTasks, BwdWMinibatch>;

}  // namespace hwyconv::impl
