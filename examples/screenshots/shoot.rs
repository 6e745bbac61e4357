//! Drives the browser through the seven pages at one width and saves a PNG
//! of each: the page from its top, as tall as its content up to a cap (so
//! a long page is cut, never scaled).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fantoccini::Locator;

use crate::art::{product_png, Shape};
use crate::browser::{Browser, BOUND};
use crate::cdp;
use crate::seed::{Shop, BUYER_EMAIL, PASSWORD, SEARCH_TERM, SELLER_EMAIL};

/// One width to shoot at.
pub struct Width {
    /// `desktop` or `phone`, in the file names.
    pub label: &'static str,
    /// CSS pixels.
    pub pixels: u32,
    /// The tallest a screenshot may be.
    pub max_height: u32,
}

/// Where the pictures go, and the server.
pub struct Shooter<'a> {
    pub browser: &'a Browser,
    pub base: &'a str,
    pub out: &'a Path,
    /// When the run started, for the progress lines.
    pub started: Instant,
}

/// The item the seller lists through the seller page itself.
const LAMP: &str = "Brass Desk Lamp";

impl Shooter<'_> {
    /// The seven pages at `width`. The first width also lists an item
    /// through the seller page (the page lists what this browser created).
    pub async fn pages(&self, shop: &Shop, width: &Width, first: bool) -> anyhow::Result<()> {
        cdp::viewport(&self.browser.client, width.pixels, 900).await?;
        self.sign_in_buyer().await?;
        self.open("/#/", "recommendation").await?;
        self.snap("home", width).await?;
        self.open(&format!("/#/search?term={SEARCH_TERM}"), "search-result")
            .await?;
        // Phones fold the filters away: unfold them, as a shopper would.
        self.browser
            .run("document.querySelectorAll('aside details').forEach((d) => { d.open = true; });")
            .await;
        self.snap("search", width).await?;
        self.open(&format!("/#/item/{}", shop.item), "item-available")
            .await?;
        self.snap("item", width).await?;
        self.open("/#/cart", "cart-line").await?;
        self.snap("cart", width).await?;
        self.open("/#/checkout", "place-order").await?;
        for (hook, text) in [
            ("address-line1", "14 Residency Road"),
            ("address-city", "Bengaluru"),
            ("address-postal-code", "560025"),
            ("address-country", "IN"),
            ("card-number", "4111 1111 1111 4242"),
        ] {
            self.browser.type_into(hook, text).await;
        }
        self.snap("checkout", width).await?;
        self.open(&format!("/#/order/{}", shop.order), "order-history")
            .await?;
        self.browser
            .text_until("order-status", |t| t.contains("SHIPPED"))
            .await;
        self.snap("order", width).await?;
        self.seller(width, first).await
    }

    /// Signs the buyer in through the storefront's form.
    async fn sign_in_buyer(&self) -> anyhow::Result<()> {
        self.browser.goto(&format!("{}/#/signin", self.base)).await;
        self.browser
            .run("localStorage.removeItem('agora.token'); localStorage.removeItem('agora.user'); localStorage.removeItem('agora.cartToken'); location.reload();")
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.browser.type_into("email", BUYER_EMAIL).await;
        self.browser.type_into("password", PASSWORD).await;
        self.browser.click("sign-in-submit").await;
        self.browser
            .text_until("cart-count", |t| t.starts_with('4'))
            .await;
        Ok(())
    }

    /// The seller page, signed in through its form; lists an item through
    /// the page's form when `create`.
    async fn seller(&self, width: &Width, create: bool) -> anyhow::Result<()> {
        self.browser.goto(&format!("{}/seller", self.base)).await;
        self.browser.type_into("email", SELLER_EMAIL).await;
        self.browser.type_into("password", PASSWORD).await;
        self.browser.click("sign-in-submit").await;
        if create {
            for (hook, text) in [
                ("new-item-name", LAMP),
                (
                    "new-item-description",
                    "Hand-polished brass, warm 2700 K bulb included.",
                ),
                ("new-item-price", "2450.00"),
                ("new-item-quantity", "18"),
                ("new-item-brand", "Kala Goods"),
                ("new-item-category", "home"),
            ] {
                self.browser.type_into(hook, text).await;
            }
            self.browser.click("new-item-submit").await;
            self.upload_lamp_picture().await?;
        }
        self.browser
            .first_hook_containing("seller-item", LAMP)
            .await;
        self.browser.hook("seller-order").await;
        self.snap("seller", width).await
    }

    /// Gives the lamp a picture through its card's file input (the drop
    /// zone's keyboard and click path), and waits for the card to show it.
    async fn upload_lamp_picture(&self) -> anyhow::Result<()> {
        let mut file = tempfile::Builder::new().suffix(".png").tempfile()?;
        file.write_all(&product_png(Shape::Bottle, [180, 140, 40], [254, 243, 199]))?;
        let card = self
            .browser
            .first_hook_containing("seller-item", LAMP)
            .await;
        let input = card.find(Locator::Css("input[type=file]")).await?;
        input.send_keys(&file.path().to_string_lossy()).await?;
        let started = Instant::now();
        while started.elapsed() < BOUND {
            let card = self
                .browser
                .first_hook_containing("seller-item", LAMP)
                .await;
            if card.find(Locator::Css("img")).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the lamp's picture did not show within {BOUND:?}")
    }

    /// Opens `path` and waits for the `hook` element.
    async fn open(&self, path: &str, hook: &str) -> anyhow::Result<()> {
        self.browser.goto(&format!("{}{path}", self.base)).await;
        self.browser.hook(hook).await;
        Ok(())
    }

    /// Saves `{name}-{label}.png`: waits for the page's pictures, sizes
    /// the viewport to the content (up to the cap), takes it, and puts the
    /// viewport back.
    async fn snap(&self, name: &str, width: &Width) -> anyhow::Result<()> {
        self.images_loaded().await?;
        // Take focus off the last field typed into (no caret in the picture).
        let height = self
            .browser
            .run("document.activeElement?.blur(); window.scrollTo(0, 0); return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .context("the page's height")? as u32;
        let height = height.clamp(600, width.max_height);
        let client = &self.browser.client;
        cdp::viewport(client, width.pixels, height).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = cdp::picture(client, width.pixels, height).await?;
        let path = self.out.join(format!("{name}-{}.png", width.label));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        cdp::viewport(client, width.pixels, 900).await?;
        println!(
            "{:6.1} s  saved {}",
            self.started.elapsed().as_secs_f64(),
            path.display()
        );
        Ok(())
    }

    /// Waits until every `<img>` on the page has loaded (or failed).
    async fn images_loaded(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < BOUND {
            let done = self
                .browser
                .run("return [...document.images].every((i) => i.complete);")
                .await;
            if done.as_bool() == Some(true) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let images = self
            .browser
            .client
            .find_all(Locator::Css("img"))
            .await?
            .len();
        bail!("of {images} images, some were still loading after {BOUND:?}")
    }
}
