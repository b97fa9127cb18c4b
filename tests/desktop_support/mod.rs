//! Support of the real-browser test: the WebDriver client.
#![allow(dead_code, unreachable_pub)]

pub mod webdriver;
