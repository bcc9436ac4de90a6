//! Where the names of a scatter plot's points go: beside each point, inside the plot, clear
//! of the other names and markers where there is room.
//!
//! A name tries the four corners around its point in turn (upper right first, as a reader
//! looks for it) and takes the first that stays inside the plotting area and covers no name
//! placed before and no other marker; where none is free, the one that covers least.

use std::ops::Range;

/// A rectangle in pixels: left, top, right, bottom (right and bottom excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Box2 {
    pub left: i32,
    pub top: i32,
    pub right: i32,
    pub bottom: i32,
}

impl Box2 {
    fn overlap(&self, other: &Box2) -> i64 {
        let w = (self.right.min(other.right) - self.left.max(other.left)).max(0) as i64;
        let h = (self.bottom.min(other.bottom) - self.top.max(other.top)).max(0) as i64;
        w * h
    }

    fn outside(&self, xs: &Range<i32>, ys: &Range<i32>) -> i64 {
        let area = ((self.right - self.left) * (self.bottom - self.top)) as i64;
        let inside = Box2 { left: xs.start, top: ys.start, right: xs.end, bottom: ys.end };
        area - self.overlap(&inside)
    }
}

/// The box of each name: `points` are the markers' centres in pixels, `sizes` each name's
/// width and height, `radius` the markers' radius, `xs` and `ys` the plotting area.
pub fn place(points: &[(i32, i32)], sizes: &[(u32, u32)], radius: i32, xs: Range<i32>, ys: Range<i32>) -> Vec<Box2> {
    let gap = radius + 2;
    let markers: Vec<Box2> = points
        .iter()
        .map(|&(x, y)| Box2 { left: x - radius, top: y - radius, right: x + radius + 1, bottom: y + radius + 1 })
        .collect();
    let mut placed: Vec<Box2> = Vec::with_capacity(points.len());
    for (i, (&(x, y), &(w, h))) in points.iter().zip(sizes).enumerate() {
        let (w, h) = (w as i32, h as i32);
        let corners = [
            Box2 { left: x + gap, top: y - gap - h, right: x + gap + w, bottom: y - gap },
            Box2 { left: x + gap, top: y + gap, right: x + gap + w, bottom: y + gap + h },
            Box2 { left: x - gap - w, top: y - gap - h, right: x - gap, bottom: y - gap },
            Box2 { left: x - gap - w, top: y + gap, right: x - gap, bottom: y + gap + h },
        ];
        // Leaving the plot is worse than covering anything: a clipped name cannot be read.
        let cost = |b: &Box2| {
            let covered: i64 = placed
                .iter()
                .chain(markers.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, m)| m))
                .map(|o| b.overlap(o))
                .sum();
            (b.outside(&xs, &ys), covered)
        };
        let best = corners.iter().copied().min_by_key(cost).expect("four corners");
        placed.push(best);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_name_sits_above_right_of_its_point() {
        let b = place(&[(100, 100)], &[(40, 12)], 3, 0..300, 0..300);
        assert_eq!(b, vec![Box2 { left: 105, top: 83, right: 145, bottom: 95 }]);
    }

    #[test]
    fn names_of_points_on_one_spot_do_not_cover_each_other() {
        let points = [(100, 100), (101, 100), (100, 101), (102, 102)];
        let b = place(&points, &[(40, 12); 4], 3, 0..300, 0..300);
        for i in 0..4 {
            for j in 0..i {
                assert_eq!(b[i].overlap(&b[j]), 0, "names {i} and {j} overlap: {:?} {:?}", b[i], b[j]);
            }
        }
    }

    #[test]
    fn a_name_by_the_right_or_top_edge_turns_inwards() {
        let b = place(&[(290, 100), (100, 5)], &[(40, 12); 2], 3, 0..300, 0..300);
        assert!(b[0].right <= 300 && b[0].left < 290, "{:?}", b[0]);
        assert!(b[1].top >= 0 && b[1].top > 5, "{:?}", b[1]);
    }

    #[test]
    fn a_name_avoids_another_points_marker() {
        // A second point sits where the first name would go.
        let b = place(&[(100, 100), (120, 90)], &[(40, 12); 2], 3, 0..300, 0..300);
        let marker = Box2 { left: 117, top: 87, right: 124, bottom: 94 };
        assert_eq!(b[0].overlap(&marker), 0, "{:?}", b[0]);
    }
}
