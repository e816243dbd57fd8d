// The one way models/src outside kernels/ includes Eigen (private; Eigen types never reach a
// public header).
//
// Eigen never starts threads of its own in edgefl: EIGEN_DONT_PARALLELIZE keeps its products
// serial (kernels/baseline.cc does the same), and the layers split work over OpenMP themselves,
// only when the model decides a batch is worth it (parallel.h). That is how a pool of
// per-client threads, each running its own model inside an outer parallel region, avoids
// oversubscribing the cores.
#pragma once

#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif
#include <Eigen/Core>
