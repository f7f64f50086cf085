#pragma once
// Triangulation of a set of directions on the unit sphere (their convex hull) and the real-time
// lookup "which triangle encloses this direction, with which barycentric weights" used to
// interpolate HRTFs between the three enclosing measurements (VBAP-style weights).
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace stemsphere {

// Cartesian direction in the SOFA / listener frame: +x front, +y left, +z up.
struct Vec3 {
    double x = 0.0;
    double y = 0.0;
    double z = 0.0;
};

inline double dot(const Vec3& a, const Vec3& b) {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}

// Unit vector for SOFA spherical coordinates: azimuth counter-clockwise from the front (+90 =
// left), elevation up from the horizontal plane, both in degrees.
Vec3 direction_from_degrees(double azimuth_deg, double elevation_deg);

// Normalised copy; a zero vector yields the front direction (1, 0, 0).
Vec3 normalised(const Vec3& v);

class SphereTriangulation {
  public:
    // Convex hull of `directions` (unit vectors, pairwise distinct, not all in one half-space).
    // Non-real-time. Returns nullptr with a reason in *error when the hull is degenerate or does
    // not use every direction as a vertex.
    static std::unique_ptr<SphereTriangulation> build(std::span<const Vec3> directions,
                                                      std::string* error);

    struct Location {
        std::array<uint32_t, 3> vertex{};
        std::array<float, 3> weight{};  // >= 0, sum 1
        uint32_t triangle = 0;
    };

    // Triangle whose cone contains `direction` (any length > 0) and the normalised barycentric
    // weights of its vertices. Real-time safe: walks from `hint_triangle` (the previous answer for
    // a moving source is usually the same triangle or a neighbour), falling back to a full scan.
    Location locate(const Vec3& direction, uint32_t hint_triangle = 0) const;

    size_t vertex_count() const { return vertex_count_; }
    size_t triangle_count() const { return triangles_.size(); }
    const std::array<uint32_t, 3>& triangle(size_t i) const { return triangles_[i]; }

  private:
    SphereTriangulation() = default;
    // Weights of `d` in the basis of triangle t's vertices (unnormalised).
    std::array<double, 3> cone_weights(uint32_t t, const Vec3& d) const;

    size_t vertex_count_ = 0;
    std::vector<std::array<uint32_t, 3>> triangles_;
    // neighbour_[t][i]: triangle across the edge opposite vertex i of triangle t.
    std::vector<std::array<uint32_t, 3>> neighbour_;
    // Row-major inverse of the matrix whose columns are the triangle's vertices.
    std::vector<std::array<double, 9>> inverse_;
};

}  // namespace stemsphere
