#include "engine/binaural/sphere_triangulation.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numbers>
#include <unordered_map>
#include <unordered_set>

namespace stemsphere {

Vec3 direction_from_degrees(double azimuth_deg, double elevation_deg) {
    const double az = azimuth_deg * std::numbers::pi / 180.0;
    const double el = elevation_deg * std::numbers::pi / 180.0;
    return {std::cos(el) * std::cos(az), std::cos(el) * std::sin(az), std::sin(el)};
}

Vec3 normalised(const Vec3& v) {
    const double n = std::sqrt(dot(v, v));
    if (!(n > 1e-300)) return {1.0, 0.0, 0.0};
    return {v.x / n, v.y / n, v.z / n};
}

namespace {

Vec3 sub(const Vec3& a, const Vec3& b) {
    return {a.x - b.x, a.y - b.y, a.z - b.z};
}
Vec3 cross(const Vec3& a, const Vec3& b) {
    return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

// Points closer to a face plane than this distance count as "on" it (not visible). Measured grids
// have many cocircular quads, and SOFA positions are single precision (~1e-7 noise): a smaller
// tolerance makes visibility inconsistent between neighbouring faces and breaks the hull. A
// point truly outside the hull of a grid with 1 degree spacing clears a face by > 1e-4.
constexpr double kPlaneEpsilon = 5e-7;

struct Face {
    std::array<uint32_t, 3> v;
    Vec3 normal;  // outward, unit length
    double offset;
    bool alive;
};

Face make_face(std::span<const Vec3> p, uint32_t a, uint32_t b, uint32_t c) {
    Face f{{a, b, c}, normalised(cross(sub(p[b], p[a]), sub(p[c], p[a]))), 0.0, true};
    f.offset = dot(f.normal, p[a]);
    return f;
}

double height(const Face& f, const Vec3& q) {
    return dot(f.normal, q) - f.offset;
}

uint64_t edge_key(uint32_t from, uint32_t to) {
    return (uint64_t{from} << 32) | to;
}

// Near-coplanar faces far from the point can pass the visibility test by rounding noise; a
// visible set that is not connected has no single horizon and would break the hull. Keep the
// faces connected (through shared edges) to the face the point is highest above.
void keep_connected_to_highest(const std::vector<Face>& faces, const Vec3& point,
                               std::vector<size_t>* visible) {
    if (visible->size() < 2) return;
    std::unordered_map<uint64_t, size_t> by_edge;
    size_t highest = (*visible)[0];
    for (size_t f : *visible) {
        if (height(faces[f], point) > height(faces[highest], point)) highest = f;
        const auto& v = faces[f].v;
        for (int e = 0; e < 3; ++e) by_edge.emplace(edge_key(v[e], v[(e + 1) % 3]), f);
    }
    std::vector<size_t> component{highest};
    std::unordered_set<size_t> reached{highest};
    for (size_t i = 0; i < component.size(); ++i) {
        const auto& v = faces[component[i]].v;
        for (int e = 0; e < 3; ++e) {
            const auto twin = by_edge.find(edge_key(v[(e + 1) % 3], v[e]));
            if (twin != by_edge.end() && reached.insert(twin->second).second) {
                component.push_back(twin->second);
            }
        }
    }
    *visible = std::move(component);
}

}  // namespace

std::unique_ptr<SphereTriangulation> SphereTriangulation::build(std::span<const Vec3> directions,
                                                                std::string* error) {
    auto fail = [error](const std::string& why) {
        if (error != nullptr) *error = why;
        return std::unique_ptr<SphereTriangulation>();
    };
    const size_t n = directions.size();
    if (n < 4) return fail("need at least 4 directions to triangulate the sphere");
    if (n >= (size_t{1} << 31)) return fail("too many directions");

    // Initial tetrahedron: two far-apart points, the point farthest from their line, then the
    // point farthest from that plane.
    uint32_t i0 = 0, i1 = 0;
    double best = -1.0;
    for (uint32_t i = 1; i < n; ++i) {
        const Vec3 d = sub(directions[i], directions[0]);
        if (dot(d, d) > best) best = dot(d, d), i1 = i;
    }
    if (best < 1e-12) return fail("directions are all identical");
    uint32_t i2 = 0;
    best = -1.0;
    const Vec3 axis = sub(directions[i1], directions[i0]);
    for (uint32_t i = 0; i < n; ++i) {
        const Vec3 c = cross(axis, sub(directions[i], directions[i0]));
        if (dot(c, c) > best) best = dot(c, c), i2 = i;
    }
    if (best < 1e-12) return fail("directions are all on one line");
    const Vec3 plane_normal = cross(axis, sub(directions[i2], directions[i0]));
    uint32_t i3 = 0;
    best = 0.0;
    double signed_best = 0.0;
    for (uint32_t i = 0; i < n; ++i) {
        const double h = dot(plane_normal, sub(directions[i], directions[i0]));
        if (std::fabs(h) > best) best = std::fabs(h), signed_best = h, i3 = i;
    }
    if (best < 1e-9) {
        return fail("directions are all in one plane (add elevations or poles)");
    }

    std::vector<Face> faces;
    faces.reserve(2 * n + 8);
    // Orient so that normals point away from the tetrahedron's interior.
    if (signed_best > 0.0) std::swap(i1, i2);  // i3 must lie below plane (i0, i1, i2)
    faces.push_back(make_face(directions, i0, i1, i2));
    faces.push_back(make_face(directions, i0, i3, i1));
    faces.push_back(make_face(directions, i1, i3, i2));
    faces.push_back(make_face(directions, i2, i3, i0));

    // Deterministic scrambled insertion order keeps the expected cost low on ring-ordered grids.
    std::vector<uint32_t> order;
    order.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
        if (i != i0 && i != i1 && i != i2 && i != i3) order.push_back(i);
    }
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (size_t i = order.size(); i > 1; --i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        std::swap(order[i - 1], order[(state >> 33) % i]);
    }

    std::vector<size_t> visible;
    std::unordered_set<uint64_t> visible_edges;
    for (uint32_t p : order) {
        visible.clear();
        visible_edges.clear();
        for (size_t f = 0; f < faces.size(); ++f) {
            if (faces[f].alive && height(faces[f], directions[p]) > kPlaneEpsilon) {
                visible.push_back(f);
            }
        }
        if (visible.empty()) continue;  // inside or on the hull: reported below as unused
        keep_connected_to_highest(faces, directions[p], &visible);
        for (size_t f : visible) {
            const auto& v = faces[f].v;
            for (int e = 0; e < 3; ++e) visible_edges.insert(edge_key(v[e], v[(e + 1) % 3]));
        }
        for (size_t f : visible) {
            faces[f].alive = false;
            const auto v = faces[f].v;
            for (int e = 0; e < 3; ++e) {
                const uint32_t a = v[e], b = v[(e + 1) % 3];
                // Horizon edge: its twin belongs to a face that stays.
                if (!visible_edges.contains(edge_key(b, a))) {
                    faces.push_back(make_face(directions, a, b, p));
                }
            }
        }
        // Compact now and then so the visibility scan stays proportional to the live hull.
        if (faces.size() > 4 * n + 16) {
            std::erase_if(faces, [](const Face& f) { return !f.alive; });
            // A convex hull of n points has 2n - 4 faces; more means numerical breakdown.
            if (faces.size() > 2 * n + 16) {
                return fail("convex hull construction failed (numerically degenerate directions)");
            }
        }
    }
    std::erase_if(faces, [](const Face& f) { return !f.alive; });

    auto tri = std::unique_ptr<SphereTriangulation>(new SphereTriangulation());
    tri->vertex_count_ = n;
    std::vector<bool> used(n, false);
    std::unordered_map<uint64_t, uint32_t> edge_owner;  // directed edge -> (face << 2 | slot)
    edge_owner.reserve(faces.size() * 3);
    for (uint32_t f = 0; f < faces.size(); ++f) {
        tri->triangles_.push_back(faces[f].v);
        for (int e = 0; e < 3; ++e) {
            used[faces[f].v[e]] = true;
            const uint32_t a = faces[f].v[e], b = faces[f].v[(e + 1) % 3];
            // The edge (a, b) is opposite vertex slot (e + 2) % 3.
            if (!edge_owner.emplace(edge_key(a, b), (f << 2) | uint32_t((e + 2) % 3)).second) {
                return fail("triangulation is not a closed 2-manifold (duplicate directions?)");
            }
        }
    }
    for (size_t i = 0; i < n; ++i) {
        if (!used[i]) {
            return fail("direction " + std::to_string(i) +
                        " is not a hull vertex (duplicate or not on the unit sphere?)");
        }
    }
    if (faces.size() != 2 * n - 4) return fail("triangulation has the wrong number of triangles");
    tri->neighbour_.resize(faces.size());
    for (uint32_t f = 0; f < faces.size(); ++f) {
        for (int e = 0; e < 3; ++e) {
            const uint32_t a = faces[f].v[e], b = faces[f].v[(e + 1) % 3];
            const auto twin = edge_owner.find(edge_key(b, a));
            if (twin == edge_owner.end()) return fail("triangulation has an open edge");
            tri->neighbour_[f][(e + 2) % 3] = twin->second >> 2;
        }
    }
    tri->inverse_.resize(faces.size());
    for (size_t f = 0; f < faces.size(); ++f) {
        const Vec3& a = directions[faces[f].v[0]];
        const Vec3& b = directions[faces[f].v[1]];
        const Vec3& c = directions[faces[f].v[2]];
        // Inverse of [a b c] (columns) = rows (b x c, c x a, a x b) / det.
        const Vec3 r0 = cross(b, c), r1 = cross(c, a), r2 = cross(a, b);
        const double det = dot(a, r0);
        if (!(det > 1e-15)) return fail("degenerate triangle (origin not inside the hull?)");
        tri->inverse_[f] = {r0.x / det, r0.y / det, r0.z / det, r1.x / det, r1.y / det,
                            r1.z / det, r2.x / det, r2.y / det, r2.z / det};
    }
    return tri;
}

std::array<double, 3> SphereTriangulation::cone_weights(uint32_t t, const Vec3& d) const {
    const auto& m = inverse_[t];
    return {m[0] * d.x + m[1] * d.y + m[2] * d.z, m[3] * d.x + m[4] * d.y + m[5] * d.z,
            m[6] * d.x + m[7] * d.y + m[8] * d.z};
}

SphereTriangulation::Location SphereTriangulation::locate(const Vec3& direction,
                                                          uint32_t hint_triangle) const {
    assert(!triangles_.empty());
    constexpr double kInside = -1e-12;
    uint32_t t = hint_triangle < triangles_.size() ? hint_triangle : 0;
    std::array<double, 3> w{};
    bool found = false;
    // A greedy walk towards the most negative weight reaches the target on a convex hull; the
    // step bound only guards against cycling on numerically flat spots.
    const size_t max_steps = 64 + triangles_.size() / 8;
    for (size_t step = 0; step < max_steps; ++step) {
        w = cone_weights(t, direction);
        int worst = 0;
        for (int i = 1; i < 3; ++i) {
            if (w[i] < w[worst]) worst = i;
        }
        if (w[worst] >= kInside) {
            found = true;
            break;
        }
        t = neighbour_[t][worst];
    }
    if (!found) {
        double best_min = -1e300;
        for (uint32_t c = 0; c < triangles_.size(); ++c) {
            const auto cw = cone_weights(c, direction);
            const double m = std::min({cw[0], cw[1], cw[2]});
            if (m > best_min) best_min = m, t = c, w = cw;
        }
    }
    Location loc;
    loc.triangle = t;
    loc.vertex = triangles_[t];
    double sum = 0.0;
    for (double& x : w) {
        x = std::max(x, 0.0);
        sum += x;
    }
    for (int i = 0; i < 3; ++i) {
        loc.weight[i] = sum > 0.0 ? static_cast<float>(w[i] / sum) : (i == 0 ? 1.0f : 0.0f);
    }
    return loc;
}

}  // namespace stemsphere
