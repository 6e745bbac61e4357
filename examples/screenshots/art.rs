//! Simple product pictures for the seeded shop: a flat pastel background,
//! a soft shadow and one flat shape per kind of product, as PNG bytes.
//! Flat colours keep the files (and the screenshots) small.

use image::{ImageFormat, Rgb, RgbImage};

/// The outline a product is drawn with.
#[derive(Clone, Copy)]
pub enum Shape {
    /// A dark slab with a lit face (mouse, keyboard, charger).
    Device,
    /// A ring (headphones, skillet, mug seen from above).
    Round,
    /// A tall body with a cap (bottle, French press).
    Bottle,
    /// A T-shape (shirts, kurtas).
    Shirt,
    /// A cover with a spine (books).
    Book,
    /// A low wedge (shoes).
    Shoe,
}

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

/// A `WIDTH`×`HEIGHT` PNG of `shape` in `colour` on `background`.
pub fn product_png(shape: Shape, colour: [u8; 3], background: [u8; 3]) -> Vec<u8> {
    let accent = shade(colour, 0.65);
    let light = shade(colour, 1.35);
    let shadow = shade(background, 0.86);
    let image = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let (x, y) = (x as f32, y as f32);
        let paint = match inside(shape, x, y) {
            Some(Part::Body) => colour,
            Some(Part::Detail) => accent,
            Some(Part::Highlight) => light,
            None if ellipse(x, y, 320.0, 405.0, 190.0, 22.0) => shadow,
            None => background,
        };
        Rgb(paint)
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("encode a PNG in memory");
    bytes.into_inner()
}

enum Part {
    Body,
    Detail,
    Highlight,
}

/// Which part of `shape` the point (x, y) falls on, if any.
fn inside(shape: Shape, x: f32, y: f32) -> Option<Part> {
    let pick = |detail: bool, highlight: bool, body: bool| {
        if detail {
            Some(Part::Detail)
        } else if highlight {
            Some(Part::Highlight)
        } else if body {
            Some(Part::Body)
        } else {
            None
        }
    };
    match shape {
        Shape::Device => pick(
            rounded(x, y, 250.0, 175.0, 390.0, 215.0, 8.0) && (y as u32 / 30) % 2 == 0,
            rounded(x, y, 200.0, 130.0, 440.0, 150.0, 6.0),
            rounded(x, y, 170.0, 110.0, 470.0, 390.0, 40.0),
        ),
        Shape::Round => pick(
            ellipse(x, y, 320.0, 250.0, 70.0, 70.0),
            ellipse(x, y, 320.0, 250.0, 110.0, 110.0),
            ellipse(x, y, 320.0, 250.0, 150.0, 150.0)
                || rounded(x, y, 455.0, 235.0, 600.0, 265.0, 12.0),
        ),
        Shape::Bottle => pick(
            rounded(x, y, 280.0, 60.0, 360.0, 110.0, 10.0),
            rounded(x, y, 240.0, 200.0, 400.0, 260.0, 4.0),
            rounded(x, y, 230.0, 100.0, 410.0, 400.0, 36.0),
        ),
        Shape::Shirt => pick(
            ellipse(x, y, 320.0, 95.0, 48.0, 28.0),
            rounded(x, y, 300.0, 140.0, 340.0, 400.0, 0.0) && (x as u32 / 10) % 2 == 0,
            rounded(x, y, 220.0, 90.0, 420.0, 400.0, 16.0)
                || (y < 200.0 && (120.0..520.0).contains(&x) && y > 90.0 + (x - 320.0).abs() * 0.1),
        ),
        Shape::Book => pick(
            rounded(x, y, 210.0, 80.0, 245.0, 400.0, 4.0),
            rounded(x, y, 280.0, 150.0, 410.0, 190.0, 4.0),
            rounded(x, y, 210.0, 80.0, 440.0, 400.0, 10.0),
        ),
        Shape::Shoe => pick(
            rounded(x, y, 130.0, 340.0, 520.0, 380.0, 14.0),
            rounded(x, y, 300.0, 230.0, 420.0, 250.0, 6.0)
                || rounded(x, y, 300.0, 270.0, 420.0, 290.0, 6.0),
            rounded(x, y, 130.0, 260.0, 520.0, 360.0, 40.0)
                || rounded(x, y, 150.0, 190.0, 360.0, 340.0, 50.0),
        ),
    }
}

fn ellipse(x: f32, y: f32, cx: f32, cy: f32, rx: f32, ry: f32) -> bool {
    let (dx, dy) = ((x - cx) / rx, (y - cy) / ry);
    dx * dx + dy * dy <= 1.0
}

/// Inside the rectangle (x0, y0)–(x1, y1) with corners of radius `r`.
fn rounded(x: f32, y: f32, x0: f32, y0: f32, x1: f32, y1: f32, r: f32) -> bool {
    if x < x0 || x > x1 || y < y0 || y > y1 {
        return false;
    }
    let cx = x.clamp(x0 + r, x1 - r);
    let cy = y.clamp(y0 + r, y1 - r);
    (x - cx).powi(2) + (y - cy).powi(2) <= r * r
}

fn shade(colour: [u8; 3], factor: f32) -> [u8; 3] {
    colour.map(|c| (c as f32 * factor).clamp(0.0, 255.0) as u8)
}
